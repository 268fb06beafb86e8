//! The plan file as YAML, before it means anything: a tree of nodes that each
//! remember where they were written, so validation can point at them.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned};

/// One YAML node and where it starts (1-based line and column).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: u64,
    pub column: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; keys keep their own position.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What the node is, as a user would say it, for "expected X, found Y".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Float(_) => "a fractional number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The scalar as written (numbers and booleans rendered back to text).
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// A YAML syntax problem: the file cannot be read as YAML at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Reads YAML text into a located tree. An empty document is a null node at 1:1.
pub fn load(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(Node { value: Value::Null, line: 1, column: 1 });
    }
    // Repeated keys reach the tree and are reported with their field path by the reader.
    // YAML 1.2 booleans only: `on:` (notify.on) and a region named `no` stay text, not true/false.
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options::<Option<Node>>(text, options)
        .map(|node| node.unwrap_or(Node { value: Value::Null, line: 1, column: 1 }))
        .map_err(|err| {
            let (line, column) =
                err.location().map(|l| (l.line(), l.column())).filter(|&(l, _)| l > 0).unwrap_or((1, 1));
            let message = serde_saphyr::UserMessageFormatter.format_message(innermost(&err)).into_owned();
            SyntaxError { line, column, message: format!("not valid YAML: {message}") }
        })
}

/// Snippet and alias wrappers carry the real error inside.
fn innermost(err: &serde_saphyr::Error) -> &serde_saphyr::Error {
    match err {
        serde_saphyr::Error::WithSnippet { error, .. } => innermost(error),
        serde_saphyr::Error::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node { value: spanned.value, line: spanned.referenced.line(), column: spanned.referenced.column() })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i128::try_from(v).map(Value::Int).unwrap_or(Value::Str(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(node: &Node) -> (u64, u64) {
        (node.line, node.column)
    }

    #[test]
    fn keys_and_values_keep_their_positions() {
        let node = load("name: shop\ndatabase:\n  kind: postgres\nlist: [a, b]\n").unwrap();
        let Value::Map(entries) = &node.value else { panic!("{node:?}") };
        assert_eq!(entries[0].0.value, Value::Str("name".into()));
        assert_eq!(at(&entries[0].0), (1, 1));
        assert_eq!(at(&entries[0].1), (1, 7));
        assert_eq!(at(&entries[1].0), (2, 1));
        let Value::Map(inner) = &entries[1].1.value else { panic!() };
        assert_eq!(at(&inner[0].0), (3, 3));
        assert_eq!(at(&inner[0].1), (3, 9));
        let Value::Seq(items) = &entries[2].1.value else { panic!() };
        assert_eq!(at(&items[1]), (4, 11));
    }

    #[test]
    fn scalars_keep_their_yaml_types() {
        let node = load("a: 200\nb: '200'\nc: true\nd: 1s\ne: ~\nf: 10.200.0.1\n").unwrap();
        let Value::Map(entries) = node.value else { panic!() };
        let values: Vec<_> = entries.into_iter().map(|(_, v)| v.value).collect();
        assert_eq!(
            values,
            vec![
                Value::Int(200),
                Value::Str("200".into()),
                Value::Bool(true),
                Value::Str("1s".into()),
                Value::Null,
                Value::Str("10.200.0.1".into()),
            ]
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = load("name: shop\nregions: [east\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        assert!(err.message.starts_with("not valid YAML: "), "{err:?}");
        assert!(!err.message.contains("line"), "location is reported separately: {err:?}");
    }

    #[test]
    fn repeated_keys_reach_the_tree() {
        let node = load("zone: a.\nzone: b.\n").unwrap();
        let Value::Map(entries) = node.value else { panic!() };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].0.pos(), (2, 1));
    }

    #[test]
    fn empty_text_is_null() {
        assert_eq!(load("").unwrap().value, Value::Null);
        assert_eq!(load("# only a comment\n").unwrap().value, Value::Null);
    }
}
