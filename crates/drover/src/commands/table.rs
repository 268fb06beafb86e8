//! Plain-text tables whose columns are as wide as their widest cell, header included.
//! Fixed widths broke as soon as a cell outgrew them (a run id, `ap-southeast-2`, a long
//! database state) and shifted every later column of that row.

/// How a column's cells sit in its width: text left, numbers right.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

pub struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

/// Between two columns: two spaces, so neighbouring cells never read as one.
const GAP: &str = "  ";

impl Table {
    pub fn new(headers: &[(&'static str, Align)]) -> Table {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// One row; a missing cell is empty, an extra one is dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        fn cell(row: &[String], i: usize) -> &str {
            row.get(i).map(String::as_str).unwrap_or("")
        }
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| self.rows.iter().map(|r| width(cell(r, i))).chain([width(self.headers[i].0)]).max().unwrap_or(0))
            .collect();
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&self.headers)
                .map(|((c, w), (_, align))| {
                    let pad = " ".repeat(w - width(c));
                    match align {
                        Align::Left => format!("{c}{pad}"),
                        Align::Right => format!("{pad}{c}"),
                    }
                })
                .collect();
            // The last column is left unpadded: no trailing spaces to copy or diff.
            format!("{}\n", padded.join(GAP).trim_end())
        };
        let mut out = line(self.headers.iter().map(|(h, _)| *h).collect());
        for row in &self.rows {
            out.push_str(&line((0..self.headers.len()).map(|i| cell(row, i)).collect()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&[("REGION", Align::Left), ("EPOCH", Align::Right), ("NOTE", Align::Left)]);
        t.row(vec!["ap-southeast-2".into(), "7".into(), "".into()]);
        t.row(vec!["east".into(), "12345".into(), "long note".into()]);
        assert_eq!(
            t.render(),
            "REGION          EPOCH  NOTE\n\
             ap-southeast-2      7\n\
             east            12345  long note\n"
        );
    }
}

#[cfg(test)]
mod runs_table {
    use drover_core::plan::StepKind;
    use drover_core::run::{RunHeader, RunId, RunKind, RunState, RunSummary, StepState, StepView};

    use crate::commands::terminal::{render_run, render_runs};

    fn run(id: &str, kind: RunKind, from: &str, to: &str, epoch: u64) -> RunSummary {
        RunSummary {
            header: RunHeader {
                id: RunId(id.into()),
                kind,
                plan: "shop".into(),
                from: from.into(),
                to: to.into(),
                epoch,
                steps: vec![StepKind::Fence, StepKind::Promote],
                reason: "test".into(),
                accepted_loss: None,
                requested_by: None,
            },
            state: RunState::Completed,
            started_ms: 1_700_000_000_000,
            finished_ms: Some(1_700_000_004_321),
            steps: vec![
                StepView {
                    kind: StepKind::Fence,
                    state: StepState::Applied,
                    started_ms: Some(1_700_000_000_005),
                    finished_ms: Some(1_700_000_000_017),
                    detail: Some("fenced".into()),
                    attempts: 1,
                },
                StepView {
                    kind: StepKind::Promote,
                    state: StepState::Applied,
                    started_ms: Some(1_700_000_000_017),
                    finished_ms: Some(1_700_000_004_300),
                    detail: Some("promoted".into()),
                    attempts: 2,
                },
            ],
            reason: None,
            asked: Vec::new(),
        }
    }

    /// The columns line up whatever the ids and region names: a run id is 19 characters
    /// and `ap-southeast-2 follows us-west-2` is far wider than the old fixed 17.
    #[test]
    fn runs_columns_line_up_with_long_ids_and_region_names() {
        let runs = [
            run("r1700000000000-0a1b", RunKind::Failover, "us-west-2", "ap-southeast-2", 12),
            run("r1700000000001-ffff", RunKind::Reprotect, "ap-southeast-2", "us-west-2", 7),
        ];
        assert_eq!(
            render_runs(&runs),
            "RUN                  KIND       STATE      MOVE                              EPOCH  STARTED\n\
             r1700000000000-0a1b  failover   completed  us-west-2 -> ap-southeast-2          12  2023-11-14 22:13:20.000Z\n\
             r1700000000001-ffff  reprotect  completed  ap-southeast-2 follows us-west-2      7  2023-11-14 22:13:20.000Z\n"
        );
    }

    #[test]
    fn a_runs_steps_line_up() {
        let text = render_run(&run("r1700000000000-0a1b", RunKind::Failover, "east", "west", 1));
        let table: Vec<&str> = text.lines().skip_while(|l| !l.starts_with('#')).collect();
        assert_eq!(
            table,
            [
                "#  STEP     STATE    AT (ms)     TOOK  DETAIL",
                "1  fence    applied        5    12 ms  fenced",
                "2  promote  applied       17  4283 ms  promoted (2 attempts)",
            ]
        );
    }
}
