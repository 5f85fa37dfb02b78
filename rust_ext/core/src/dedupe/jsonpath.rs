//! A small JSONPath subset for document keys: `$`, `.name`, `['name']` / `["name"]`, `[index]`.

use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Field(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
    text: String,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl JsonPath {
    /// Parses a path; errors say which character is unexpected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let chars: Vec<char> = text.trim().chars().collect();
        if chars.first() != Some(&'$') {
            return Err(format!("'{text}' is not a JSONPath (it must start with '$', e.g. '$.metadata.url')"));
        }
        let mut steps = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                        end += 1;
                    }
                    if end == start {
                        return Err(format!("'{text}': empty field name at position {start}"));
                    }
                    let name: String = chars[start..end].iter().collect();
                    if name == "*" {
                        return Err(format!("'{text}': wildcards are not supported in keys"));
                    }
                    steps.push(Step::Field(name));
                    i = end;
                }
                '[' => {
                    let close = chars[i..]
                        .iter()
                        .position(|&c| c == ']')
                        .map(|p| p + i)
                        .ok_or_else(|| format!("'{text}': '[' at position {i} is not closed"))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    let inner = inner.trim();
                    let quoted = inner.len() >= 2
                        && ((inner.starts_with('\'') && inner.ends_with('\''))
                            || (inner.starts_with('"') && inner.ends_with('"')));
                    if quoted {
                        steps.push(Step::Field(inner[1..inner.len() - 1].to_string()));
                    } else if let Ok(idx) = inner.parse::<usize>() {
                        steps.push(Step::Index(idx));
                    } else {
                        return Err(format!(
                            "'{text}': unsupported selector [{inner}] (use ['name'] or a non-negative index)"
                        ));
                    }
                    i = close + 1;
                }
                c => return Err(format!("'{text}': unexpected '{c}' at position {i}")),
            }
        }
        Ok(JsonPath { steps, text: text.to_string() })
    }

    /// One spelling per path (`$.a['b']` and `$['a'].b` are both `$.a.b`), for comparing configurations: plain
    /// names as `.name`, others as `["..."]` (JSON-quoted), indexes as `[i]`.
    pub fn canonical(&self) -> String {
        let mut out = String::from("$");
        for step in &self.steps {
            match step {
                Step::Field(name)
                    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    out.push('.');
                    out.push_str(name);
                }
                Step::Field(name) => {
                    out.push('[');
                    out.push_str(&serde_json::to_string(name).unwrap_or_default());
                    out.push(']');
                }
                Step::Index(idx) => out.push_str(&format!("[{idx}]")),
            }
        }
        out
    }

    /// The steps of the path, in order (for callers that walk their own decoded values).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The path is exactly `$.<name>` (lets callers avoid building a full JSON tree).
    pub fn single_field(&self) -> Option<&str> {
        match self.steps.as_slice() {
            [Step::Field(name)] => Some(name),
            _ => None,
        }
    }

    /// The top-level field the path starts with (`metadata` for `$.metadata.url`), if it starts with one.
    pub fn first_field(&self) -> Option<&str> {
        match self.steps.first() {
            Some(Step::Field(name)) => Some(name),
            _ => None,
        }
    }

    /// Selects the rest of the path (after its first field) in `value`, the value of that first field.
    pub fn select_in_first_field<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.first_field()?;
        Self::walk(&self.steps[1..], value)
    }

    pub fn select<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        Self::walk(&self.steps, value)
    }

    fn walk<'a>(steps: &[Step], value: &'a Value) -> Option<&'a Value> {
        let mut current = value;
        for step in steps {
            current = match (step, current) {
                (Step::Field(name), Value::Object(map)) => map.get(name)?,
                (Step::Index(idx), Value::Array(items)) => items.get(*idx)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_selects() {
        let doc: Value = serde_json::json!({"metadata": {"url": "u", "list": [1, {"a": "x"}]}, "text": "t"});
        let cases = [
            ("$.metadata.url", Some("\"u\"")),
            ("$['metadata']['url']", Some("\"u\"")),
            ("$.metadata.list[1].a", Some("\"x\"")),
            ("$.metadata[\"list\"][0]", Some("1")),
            ("$.text", Some("\"t\"")),
            ("$.missing", None),
            ("$.metadata.list[5]", None),
        ];
        for (path, want) in cases {
            let p = JsonPath::parse(path).unwrap();
            assert_eq!(p.select(&doc).map(|v| v.to_string()).as_deref(), want, "{path}");
        }
        assert_eq!(JsonPath::parse("$.text").unwrap().single_field(), Some("text"));
        for (a, b) in [("$.metadata.url", "$['metadata'][\"url\"]"), ("$.a[0]['b c']", "$[\"a\"][0][\"b c\"]")] {
            assert_eq!(JsonPath::parse(a).unwrap().canonical(), JsonPath::parse(b).unwrap().canonical());
        }
        assert_eq!(JsonPath::parse("$['a'][0]['b c']").unwrap().canonical(), "$.a[0][\"b c\"]");
        let url = JsonPath::parse("$.metadata.url").unwrap();
        assert_eq!(url.first_field(), Some("metadata"));
        assert_eq!(url.select_in_first_field(&doc["metadata"]), Some(&serde_json::json!("u")));
        assert_eq!(JsonPath::parse("$[0]").unwrap().first_field(), None);
        for bad in ["metadata.url", "$.a[", "$.a[x]", "$..a", "$.a.*"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
