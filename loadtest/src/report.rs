//! One run's result: parameters and figures in the order they were added,
//! printed as a table and, on request, as one JSON line.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::cli::OutputArgs;

/// The result of one run.
#[derive(Debug, Clone)]
pub struct RunReport {
    scenario: String,
    label: String,
    params: Vec<(String, Value)>,
    figures: Vec<(String, Value)>,
    notes: Vec<String>,
}

impl RunReport {
    /// An empty report of `scenario`, named `label`.
    pub fn new(scenario: &str, label: impl Into<String>) -> RunReport {
        RunReport {
            scenario: scenario.to_string(),
            label: label.into(),
            params: Vec::new(),
            figures: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds (or replaces) a parameter.
    pub fn param(&mut self, key: &str, value: impl Serialize) {
        set(&mut self.params, key, value);
    }

    /// Adds (or replaces) a figure.
    pub fn figure(&mut self, key: &str, value: impl Serialize) {
        set(&mut self.figures, key, value);
    }

    /// Adds a free-text remark (a warning, an explanation).
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// A figure by name.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.figures.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The report as one JSON object on one line, keys in insertion order.
    pub fn to_json_line(&self) -> String {
        let object = |pairs: &[(String, Value)]| {
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
                .collect();
            format!("{{{}}}", body.join(","))
        };
        format!(
            "{{\"scenario\":{},\"label\":{},\"unix_time\":{},\"params\":{},\"figures\":{},\"notes\":{}}}",
            Value::from(self.scenario.as_str()),
            Value::from(self.label.as_str()),
            crate::sys::unix_seconds(),
            object(&self.params),
            object(&self.figures),
            Value::from(self.notes.clone()),
        )
    }

    /// The report as an aligned two-column table.
    pub fn to_table(&self) -> String {
        let width = self
            .params
            .iter()
            .chain(&self.figures)
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(10)
            .max(10);
        let mut out = String::new();
        let _ = writeln!(out, "== {} — {} ==", self.scenario, self.label);
        let _ = writeln!(out, "-- parameters");
        for (k, v) in &self.params {
            let _ = writeln!(out, "  {k:<width$}  {}", show(v));
        }
        let _ = writeln!(out, "-- figures");
        for (k, v) in &self.figures {
            let _ = writeln!(out, "  {k:<width$}  {}", show(v));
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// Prints the table (stdout, or stderr with `--json`), the JSON line
    /// (stdout with `--json`), and appends it to `--append`.
    pub fn emit(&self, output: &OutputArgs) -> Result<()> {
        let line = self.to_json_line();
        if output.json {
            eprint!("{}", self.to_table());
            println!("{line}");
        } else {
            print!("{}", self.to_table());
        }
        if let Some(path) = &output.append {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(file, "{line}")?;
        }
        Ok(())
    }
}

fn set(list: &mut Vec<(String, Value)>, key: &str, value: impl Serialize) {
    let value = serde_json::to_value(value).unwrap_or(Value::Null);
    let value = round_floats(value);
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => list.push((key.to_string(), value)),
    }
}

/// Keeps 4 significant decimals on floats, so JSON lines stay readable.
fn round_floats(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            let rounded = if f.abs() >= 100.0 {
                (f * 10.0).round() / 10.0
            } else {
                (f * 10_000.0).round() / 10_000.0
            };
            serde_json::Number::from_f64(rounded).map_or(Value::Null, Value::Number)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(round_floats).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, round_floats(v))).collect())
        }
        other => other,
    }
}

/// A value for the table: numbers grouped, objects as `k=v, …`.
pub fn show(value: &Value) -> String {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                group(i)
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f.abs() >= 1000.0 {
                    group(f.round() as i64)
                } else {
                    format!("{f:.3}")
                }
            }
        }
        Value::String(s) => s.clone(),
        Value::Object(map) if map.is_empty() => "none".into(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", show(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(", "),
        Value::Null => "-".into(),
        Value::Bool(b) => b.to_string(),
    }
}

fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_insertion_order_and_parses() {
        let mut r = RunReport::new("idle", "idle-1000");
        r.param("connections", 1000);
        r.figure("z_first", 1.234_567_8);
        r.figure("a_second", serde_json::json!({"http_503": 2}));
        r.figure("z_first", 2.5);
        r.note("hello");
        let line = r.to_json_line();
        assert!(line.find("z_first").unwrap() < line.find("a_second").unwrap());
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["figures"]["z_first"], 2.5);
        assert_eq!(v["params"]["connections"], 1000);
        assert_eq!(v["notes"][0], "hello");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn table_shows_grouped_numbers() {
        assert_eq!(show(&Value::from(1_234_567)), "1,234,567");
        assert_eq!(show(&Value::from(-1000)), "-1,000");
        assert_eq!(show(&Value::from(0.5)), "0.500");
        assert_eq!(show(&serde_json::json!({})), "none");
        let mut r = RunReport::new("p2p", "x");
        r.figure("delivered_per_s", 12345.6);
        assert!(r.to_table().contains("12,346"));
    }
}
