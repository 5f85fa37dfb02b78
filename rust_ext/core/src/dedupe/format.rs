//! The attribute line a dedupe run writes for every good document, byte for byte the same from the local
//! Bloom-filter run and from a distributed run.

/// The score of a marked span: 1 for an exact repeat, the overlap fraction in n-gram mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Score {
    One,
    Fraction(f32),
}

/// A marked span: start and end in code points, and its score.
pub(crate) type Mark = (u64, u64, Score);

/// The marks of one document: `None` writes no attribute key, `Some` a (possibly empty) list.
pub(crate) type DocMarks = Option<Vec<Mark>>;

/// The attribute name as it appears in the output: JSON-quoted.
pub(crate) fn quoted_attribute(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_else(|_| "\"dedupe\"".to_string())
}

/// Appends one attribute line, `{"id":<id>,"attributes":{<attribute>:[[start,end,score],...]}}`, where `id` is
/// the raw JSON of the document's id and `attribute` the JSON-quoted attribute name; no marks -> `{}`.
pub(crate) fn push_attribute_line(body: &mut Vec<u8>, id: &str, attribute: &str, marks: Option<&[Mark]>) {
    body.extend_from_slice(b"{\"id\":");
    body.extend_from_slice(id.as_bytes());
    body.extend_from_slice(b",\"attributes\":{");
    if let Some(list) = marks {
        body.extend_from_slice(attribute.as_bytes());
        body.extend_from_slice(b":[");
        for (i, (start, end, score)) in list.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            let score = match score {
                Score::One => "1".to_string(),
                Score::Fraction(f) => serde_json::to_string(&f64::from(*f)).unwrap_or_else(|_| "0.0".to_string()),
            };
            body.extend_from_slice(format!("[{start},{end},{score}]").as_bytes());
        }
        body.push(b']');
    }
    body.extend_from_slice(b"}}\n");
}

/// The attribute lines of documents `ids` (strings), in order: `rows[i]` (a whole line, newline included) for a
/// document `i` that has one, otherwise an empty line `{"id":<id>,"attributes":{}}`, its id JSON-escaped as the
/// Python side's encoder escapes it (`"`, `\\` and control characters; everything else as is).
pub fn attribute_rows<S: AsRef<str>, R: AsRef<[u8]>>(
    ids: &[S],
    rows: &std::collections::HashMap<usize, R>,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(ids.len() * 48);
    let mut quoted = Vec::new(); // the id, escaped: one buffer for every id
    for (i, id) in ids.iter().enumerate() {
        match rows.get(&i) {
            Some(row) => body.extend_from_slice(row.as_ref()),
            None => {
                quoted.clear();
                // Writing a str's JSON to a Vec cannot fail, and JSON of a str is UTF-8.
                let _ = serde_json::to_writer(&mut quoted, id.as_ref());
                push_attribute_line(&mut body, std::str::from_utf8(&quoted).unwrap_or("\"\""), "", None);
            }
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, marks: Option<&[Mark]>) -> String {
        let mut body = b"before\n".to_vec();
        push_attribute_line(&mut body, id, &quoted_attribute("dup \"x\""), marks);
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn rows_of_unmarked_documents_and_given_rows() {
        let rows = std::collections::HashMap::from([(1usize, b"given\n".to_vec())]);
        let body = attribute_rows(&["a\"\u{1}\n\u{7f}é", "b", "c"], &rows);
        let want = "{\"id\":\"a\\\"\\u0001\\n\u{7f}é\",\"attributes\":{}}\ngiven\n{\"id\":\"c\",\"attributes\":{}}\n";
        assert_eq!(String::from_utf8(body).unwrap(), want);
    }

    #[test]
    fn attribute_lines_are_exact_bytes() {
        assert_eq!(line("\"a\"", None), "before\n{\"id\":\"a\",\"attributes\":{}}\n");
        assert_eq!(line("7", Some(&[])), "before\n{\"id\":7,\"attributes\":{\"dup \\\"x\\\"\":[]}}\n");
        let marks = [(0, 4, Score::One), (4, 9, Score::Fraction(0.5)), (9, 12, Score::Fraction(1.0))];
        assert_eq!(
            line("\"é\"", Some(&marks)),
            "before\n{\"id\":\"é\",\"attributes\":{\"dup \\\"x\\\"\":[[0,4,1],[4,9,0.5],[9,12,1.0]]}}\n"
        );
        // an f32 fraction is written as its f64 value (what the reference toolkit writes)
        assert_eq!(
            line("1", Some(&[(0, 1, Score::Fraction(1.0 / 3.0))])),
            "before\n{\"id\":1,\"attributes\":{\"dup \\\"x\\\"\":[[0,1,0.3333333432674408]]}}\n"
        );
    }
}
