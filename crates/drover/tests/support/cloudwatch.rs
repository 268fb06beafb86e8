//! CloudWatch alarms in moto, for the tests that run drover against them (included with
//! `#[path]` beside `mod moto;`).
//!
//! moto 5.2.5 speaks CloudWatch's Query and JSON protocols but not rpc-v2-cbor, the only
//! one the Rust SDK's CloudWatch client sends. So CloudWatch requests go
//! (`AWS_ENDPOINT_URL_CLOUDWATCH`) to a small bridge that re-encodes each CBOR request as
//! JSON for moto, keeping its signed Authorization header (moto takes the region from
//! it), and moto's JSON answer as CBOR.

use crate::moto::{self, Moto};

const CLOUDWATCH_TARGET: &str = "GraniteServiceVersion20100801";

/// A request to moto in CloudWatch's JSON protocol, signed (not really) for `aws_region`.
pub fn cloudwatch(moto: &Moto, aws_region: &str, operation: &str, body: serde_json::Value) {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/20260101/{aws_region}/monitoring/aws4_request, SignedHeaders=host, Signature=00",
        moto::ACCESS_KEY_ID
    );
    let response = reqwest::blocking::Client::new()
        .post(moto.endpoint())
        .header("X-Amz-Target", format!("{CLOUDWATCH_TARGET}.{operation}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("Authorization", auth)
        .body(body.to_string())
        .send()
        .unwrap();
    assert!(response.status().is_success(), "{operation}: {}", response.text().unwrap());
}

pub fn put_alarm(moto: &Moto, aws_region: &str, name: &str) {
    let alarm = serde_json::json!({
        "AlarmName": name, "MetricName": "HTTPCode_Target_5XX_Count", "Namespace": "AWS/ApplicationELB",
        "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 10.0,
        "ComparisonOperator": "GreaterThanThreshold",
    });
    cloudwatch(moto, aws_region, "PutMetricAlarm", alarm);
}

pub fn set_state(moto: &Moto, aws_region: &str, name: &str, state: &str, reason: &str) {
    let body = serde_json::json!({ "AlarmName": name, "StateValue": state, "StateReason": reason });
    cloudwatch(moto, aws_region, "SetAlarmState", body);
}

/// The bridge between the SDK's rpc-v2-cbor and moto's JSON protocol (see the module's comment).
pub mod bridge {
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use ciborium::Value as Cbor;
    use serde_json::Value as Json;

    pub struct Bridge {
        pub endpoint: String,
        _thread: std::thread::JoinHandle<()>,
    }

    /// Serves on a free loopback port until the test process ends.
    pub fn start(moto: String) -> Bridge {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let app = axum::Router::new()
                    .route("/service/{service}/operation/{operation}", axum::routing::post(forward))
                    .with_state(moto);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            })
        });
        Bridge { endpoint, _thread: thread }
    }

    async fn forward(
        State(moto): State<String>,
        Path((service, operation)): Path<(String, String)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl IntoResponse {
        let request: Cbor =
            if body.is_empty() { Cbor::Map(Vec::new()) } else { ciborium::from_reader(&body[..]).unwrap() };
        let mut call = reqwest::Client::new()
            .post(moto)
            .header("X-Amz-Target", format!("{service}.{operation}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            .body(to_json(&request).to_string());
        if let Some(auth) = headers.get("authorization") {
            call = call.header("Authorization", auth.as_bytes());
        }
        let answer = call.send().await.unwrap();
        let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
        let json: Json = answer.json().await.unwrap_or(Json::Null);
        let mut out = Vec::new();
        ciborium::into_writer(&to_cbor(&json), &mut out).unwrap();
        (status, [("smithy-protocol", "rpc-v2-cbor"), ("content-type", "application/cbor")], out)
    }

    fn to_json(v: &Cbor) -> Json {
        match v {
            Cbor::Map(entries) => Json::Object(
                entries.iter().map(|(k, v)| (k.as_text().unwrap_or_default().to_owned(), to_json(v))).collect(),
            ),
            Cbor::Array(items) => Json::Array(items.iter().map(to_json).collect()),
            Cbor::Text(s) => Json::String(s.clone()),
            Cbor::Integer(n) => Json::from(i64::try_from(i128::from(*n)).unwrap()),
            Cbor::Float(f) => Json::from(*f),
            Cbor::Bool(b) => Json::Bool(*b),
            Cbor::Tag(_, inner) => to_json(inner),
            _ => Json::Null,
        }
    }

    /// Timestamps are left out: JSON gives them as numbers, CBOR as tagged values,
    /// and drover reads none of them.
    fn to_cbor(v: &Json) -> Cbor {
        match v {
            Json::Object(map) => Cbor::Map(
                map.iter()
                    .filter(|(k, _)| !k.ends_with("Timestamp"))
                    .map(|(k, v)| (Cbor::Text(k.clone()), to_cbor(v)))
                    .collect(),
            ),
            Json::Array(items) => Cbor::Array(items.iter().map(to_cbor).collect()),
            Json::String(s) => Cbor::Text(s.clone()),
            Json::Number(n) if n.is_f64() => Cbor::Float(n.as_f64().unwrap()),
            Json::Number(n) => Cbor::Integer(n.as_i64().unwrap().into()),
            Json::Bool(b) => Cbor::Bool(*b),
            Json::Null => Cbor::Null,
        }
    }
}
