// Longer than 400 lines because its unit tests (the code above them is about 390 lines).
//! Which documents lines are good, and why a bad one is bad, by the rule every reader of the toolkit applies
//! (Python: `dolma.documents`, `DOCUMENT_FIELDS` and `explain_bad_line`).
//!
//! A good line is UTF-8 JSON (no lone UTF-16 surrogate escape anywhere) holding an object with a string `id`
//! and `text`, and, when present, a string `source`, `added` / `created` / `version` strings or null and a
//! `metadata` object or null; other fields are free. Taggers, the deduper and the mixer agree on this rule, so
//! with `skip_bad_lines` they skip the same lines and attribute files mirror the same good lines. The reasons
//! for a bad line use the same words as the Python readers, so a user sees one message whichever command read
//! the line.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON value's kind, named as in the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    fn of(raw: &RawValue) -> Kind {
        match raw.get().as_bytes().first() {
            Some(b'"') => Kind::String,
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b't' | b'f') => Kind::Boolean,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// (field, accepted kinds, required), in the order fields are checked.
const FIELDS: [(&str, &[Kind], bool); 7] = [
    ("id", &[Kind::String], true),
    ("text", &[Kind::String], true),
    ("source", &[Kind::String], false),
    ("added", &[Kind::String, Kind::Null], false),
    ("created", &[Kind::String, Kind::Null], false),
    ("version", &[Kind::String, Kind::Null], false),
    ("metadata", &[Kind::Object, Kind::Null], false),
];

const SURROGATE: &str = "invalid string (a lone UTF-16 surrogate escape, not a Unicode character)";

/// The checked fields of a line as raw JSON borrowed from it, plus the value of one more top-level field (the
/// first step of a JSONPath dedupe key). With repeated keys the last value counts, as in Python.
#[derive(Debug, Default)]
struct Fields<'a> {
    /// id, text, source, added, created, version, metadata (the order of [`FIELDS`]).
    values: [Option<&'a RawValue>; 7],
    extra: Option<&'a RawValue>,
}

/// A good documents line: its `id` and `text` as raw JSON, and the other top-level values a reader may need.
#[derive(Debug)]
pub(crate) struct GoodLine<'a> {
    pub id: &'a RawValue,
    pub text: &'a RawValue,
    fields: Fields<'a>,
}

impl<'a> GoodLine<'a> {
    /// The raw value of top-level field `name`: one of the checked fields or the `extra` one asked for.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        match FIELDS.iter().position(|(field, _, _)| *field == name) {
            Some(i) => self.fields.values[i],
            None => self.fields.extra,
        }
    }
}

/// Parses a good line; `None` for a bad one (then [`explain`] says why). `extra` names one more top-level field
/// to keep.
pub(crate) fn parse<'a>(line: &'a str, extra: Option<&str>) -> Option<GoodLine<'a>> {
    let mut de = serde_json::Deserializer::from_str(line);
    let fields = FieldsSeed { extra }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    for ((_, kinds, required), value) in FIELDS.iter().zip(&fields.values) {
        match value {
            None if *required => return None,
            Some(raw) if !kinds.contains(&Kind::of(raw)) => return None,
            _ => {}
        }
    }
    if first_lone_surrogate(line.as_bytes()).is_some() {
        return None;
    }
    Some(GoodLine { id: fields.values[0]?, text: fields.values[1]?, fields })
}

struct FieldsSeed<'e> {
    extra: Option<&'e str>,
}

/// Which slot a key goes to.
enum Slot {
    Field(usize),
    Extra,
    Other,
}

struct KeySeed<'e> {
    extra: Option<&'e str>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Slot;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Slot, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Slot;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Slot, E> {
        Ok(match FIELDS.iter().position(|(name, _, _)| *name == key) {
            Some(i) => Slot::Field(i),
            None if self.extra == Some(key) => Slot::Extra,
            None => Slot::Other,
        })
    }
}

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = Fields<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Fields<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut out = Fields::default();
        while let Some(slot) = map.next_key_seed(KeySeed { extra: self.extra })? {
            match slot {
                Slot::Field(i) => out.values[i] = Some(map.next_value()?),
                Slot::Extra => out.extra = Some(map.next_value()?),
                Slot::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// The byte offset of the first `\uXXXX` escape that is a UTF-16 surrogate without its partner, in a line
/// whose strings are otherwise valid JSON (every backslash starts an escape).
pub(crate) fn first_lone_surrogate(line: &[u8]) -> Option<usize> {
    lone_surrogates(line).next()
}

fn hex4(line: &[u8], at: usize) -> Option<u32> {
    let digits = line.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// Offsets of every lone surrogate escape, in order.
fn lone_surrogates(line: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        while let Some(found) = memchr::memchr(b'\\', line.get(pos..)?) {
            let at = pos + found;
            if line.get(at + 1) != Some(&b'u') {
                pos = at + 2;
                continue;
            }
            let Some(unit) = hex4(line, at + 2) else {
                pos = at + 2;
                continue;
            };
            match unit {
                0xD800..=0xDBFF => {
                    let low = (line.get(at + 6..at + 8) == Some(b"\\u")).then(|| hex4(line, at + 8)).flatten();
                    if matches!(low, Some(0xDC00..=0xDFFF)) {
                        pos = at + 12;
                        continue;
                    }
                    pos = at + 6;
                    return Some(at);
                }
                0xDC00..=0xDFFF => {
                    pos = at + 6;
                    return Some(at);
                }
                _ => pos = at + 6,
            }
        }
        None
    })
}

/// Why a line is not a good document: (reason, field), in the words of the Python readers.
pub(crate) fn explain(line: &[u8]) -> (String, Option<String>) {
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            return (format!("invalid UTF-8 (byte 0x{:02x} at offset {at})", line[at]), None);
        }
    };
    // Lone surrogates are accepted by the explanation's parser (as Python's json module does) and reported by
    // the field that holds them: each escape is replaced by one of the same length that parses.
    let lone: Vec<usize> = lone_surrogates(line).collect();
    let mut patched = text.to_string();
    for &at in &lone {
        patched.replace_range(at + 2..at + 6, "fffd");
    }
    let entries = match entries(&patched, text, &lone) {
        Ok(Some(entries)) => entries,
        Ok(None) => {
            let kind = serde_json::from_str::<&RawValue>(&patched).map(Kind::of).unwrap_or(Kind::Null);
            return (format!("expected a JSON object, got {}", kind.name()), None);
        }
        Err(e) => return (json_error(text, &e), None),
    };
    let in_range = |start: usize, end: usize| lone.iter().any(|&at| (start..end).contains(&at));
    for (name, kinds, required) in FIELDS {
        let Some(entry) = entries.iter().find(|entry| entry.name == name) else {
            if required {
                return ("missing required field".to_string(), Some(name.to_string()));
            }
            continue;
        };
        let kind = Kind::of(entry.value);
        if !kinds.contains(&kind) {
            let expected: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            return (format!("expected {}, got {}", expected.join(" or "), kind.name()), Some(name.to_string()));
        }
        if kind == Kind::String && in_range(entry.value_start, entry.value_end) {
            return (SURROGATE.to_string(), Some(name.to_string()));
        }
    }
    for entry in &entries {
        if entry.key_lone || in_range(entry.value_start, entry.value_end) {
            return (SURROGATE.to_string(), Some(entry.shown.clone()));
        }
    }
    ("not a valid document".to_string(), None)
}

/// A top-level entry: name, last value (with its byte range) and whether any occurrence of the key holds a
/// lone surrogate escape (then `shown` is the name with that escape written out, `\ud800`, as Python shows it).
struct Entry<'a> {
    name: String,
    shown: String,
    value: &'a RawValue,
    value_start: usize,
    value_end: usize,
    key_lone: bool,
}

/// The top-level entries of a JSON object in first-occurrence order (`None`: the JSON is not an object);
/// `original`: the text before its lone surrogate escapes (at the offsets `lone`) were replaced.
fn entries<'a>(text: &'a str, original: &str, lone: &[usize]) -> Result<Option<Vec<Entry<'a>>>, serde_json::Error> {
    let top: &RawValue = serde_json::from_str(text)?;
    if Kind::of(top) != Kind::Object {
        return Ok(None);
    }
    let pairs: Vec<(String, &RawValue)> = serde_json::from_str::<OrderedPairs<'_>>(text)?.0;
    let base = text.as_ptr() as usize;
    let mut out: Vec<Entry<'_>> = Vec::with_capacity(pairs.len());
    let mut previous_end = 0;
    for (name, value) in pairs {
        let start = value.get().as_ptr() as usize - base;
        let end = start + value.get().len();
        let key_lone = lone.iter().any(|&at| (previous_end..start).contains(&at));
        let shown = if key_lone { shown_key(original, previous_end, start, lone) } else { None };
        previous_end = end;
        match out.iter_mut().find(|entry| entry.name == name) {
            Some(entry) => {
                entry.value = value;
                entry.value_start = start;
                entry.value_end = end;
                entry.key_lone |= key_lone;
                if let Some(shown) = shown {
                    entry.shown = shown;
                }
            }
            None => {
                let shown = shown.unwrap_or_else(|| name.clone());
                out.push(Entry { name, shown, value, value_start: start, value_end: end, key_lone });
            }
        }
    }
    Ok(Some(out))
}

/// The key written between `from` (the end of the previous value) and `to` (the start of its value) in `text`,
/// decoded with each lone surrogate escape kept as text (`\ud800`).
fn shown_key(text: &str, from: usize, to: usize, lone: &[usize]) -> Option<String> {
    let gap = text.get(from..to)?;
    let open = from + gap.find('"')?;
    let colon = from + gap.rfind(':')?;
    let close = open + 1 + text.get(open + 1..colon)?.rfind('"')?;
    let mut raw = String::with_capacity(close + 1 - open + 8);
    let mut pos = open;
    for &at in lone.iter().filter(|&&at| (open..close).contains(&at)) {
        raw.push_str(text.get(pos..at)?);
        // `\\` then `u....` in JSON: a backslash followed by the letters, the escape as Python shows it.
        raw.push_str(r"\\u");
        raw.push_str(&text.get(at + 2..at + 6)?.to_ascii_lowercase());
        pos = at + 6;
    }
    raw.push_str(text.get(pos..=close)?);
    serde_json::from_str(&raw).ok()
}

/// Every (key, raw value) of a JSON object, in order, repeats included.
struct OrderedPairs<'a>(Vec<(String, &'a RawValue)>);

impl<'de> de::Deserialize<'de> for OrderedPairs<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = OrderedPairs<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedPairs<'de>, A::Error> {
                let mut pairs = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    pairs.push((key, map.next_value::<&RawValue>()?));
                }
                Ok(OrderedPairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

/// A JSON syntax error as the Python readers word it: the 1-based character where parsing stopped, or the
/// non-JSON constant (NaN, Infinity) found there.
fn json_error(text: &str, error: &serde_json::Error) -> String {
    let total = text.chars().count();
    // One line, so the column is the 1-based byte position where the parser stopped (past the bad byte).
    let mut at = error.column().saturating_sub(1).min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    for start in [at.saturating_sub(1), at] {
        if let Some(rest) = text.get(start..) {
            for constant in ["-Infinity", "Infinity", "NaN"] {
                if rest.starts_with(constant) {
                    return format!("invalid JSON ({constant} is not a JSON value)");
                }
            }
        }
    }
    let character = text[..at].chars().count();
    format!("invalid JSON (error at character {} of {total})", character.max(1).min(total.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(line: &str) -> (String, Option<String>) {
        assert!(parse(line, None).is_none(), "{line} should be bad");
        explain(line.as_bytes())
    }

    #[test]
    fn good_lines_parse() {
        for line in [
            r#"{"id":"a","text":"x"}"#,
            r#" {"id":"a","text":"x\ud83d\ude00","source":"s","added":null,"metadata":{"k":[1,2]}} "#,
            r#"{"id":"a","id":"b","text":"x","n":1e999,"extra":{"deep":[{"x":"\\u"}]}}"#,
            r#"{"\u0069d":"a","text":"x"}"#,
        ] {
            assert!(parse(line, None).is_some(), "{line}");
        }
        let fields = parse(r#"{"id":"a","text":"x","metadata":{"url":"u"},"url":"v"}"#, Some("url")).unwrap();
        assert_eq!(fields.get("metadata").unwrap().get(), r#"{"url":"u"}"#);
        assert_eq!(fields.get("url").unwrap().get(), r#""v""#);
        assert_eq!(fields.id.get(), r#""a""#);
    }

    #[test]
    fn bad_lines_are_explained_by_field() {
        let cases: [(&str, &str, Option<&str>); 10] = [
            (r#"{"text":"x"}"#, "missing required field", Some("id")),
            (r#"{"id":"a","text":5}"#, "expected a string, got a number", Some("text")),
            (r#"{"id":"a","text":"x","source":null}"#, "expected a string, got null", Some("source")),
            (r#"{"id":"a","text":"x","added":true}"#, "expected a string or null, got a boolean", Some("added")),
            (r#"{"id":"a","text":"x","metadata":[]}"#, "expected an object or null, got an array", Some("metadata")),
            (r#"{"id":"\ud800","text":"x"}"#, SURROGATE, Some("id")),
            (r#"{"id":"a","text":"x","n":{"k":"\udc00"}}"#, SURROGATE, Some("n")),
            (r#"["id"]"#, "expected a JSON object, got an array", None),
            (r#"{"id":"a","text":"x","\ud800k":1}"#, SURROGATE, Some(r"\ud800k")),
            (r#"{"id":"a","id":7,"text":"x"}"#, "expected a string, got a number", Some("id")),
        ];
        for (line, reason, field) in cases {
            assert_eq!(explained(line), (reason.to_string(), field.map(str::to_string)), "{line}");
        }
        assert_eq!(
            explain(b"{\"id\":\"a\",\"text\":\"\xff\"}"),
            ("invalid UTF-8 (byte 0xff at offset 18)".to_string(), None)
        );
        assert_eq!(explained(r#"{"id":"a","text":NaN}"#).0, "invalid JSON (NaN is not a JSON value)");
        assert!(explained(r#"{"id":"a","text":"x""#).0.starts_with("invalid JSON (error at character "));
    }

    #[test]
    fn escaped_backslashes_are_not_escapes() {
        assert_eq!(first_lone_surrogate(br#"{"a":"\\ud800"}"#), None);
        assert_eq!(first_lone_surrogate(br#"{"a":"\\\ud800"}"#), Some(8));
        assert_eq!(first_lone_surrogate(br#"{"a":"\ud83d\ude00\ude00"}"#), Some(18));
        assert_eq!(first_lone_surrogate(br#"{"a":"\ud83d\u0041"}"#), Some(6));
    }
}
