use super::*;

fn maker(section: &str) -> KeyMaker {
    KeyMaker::new(crate::dedupe::config::test_config(section), false).unwrap()
}

/// Duplicates by exact first-occurrence over files in order (what the distributed run computes).
fn dedupe(maker: &KeyMaker, files: &[&str]) -> Vec<String> {
    let mut first: std::collections::HashMap<u64, u128> = std::collections::HashMap::new();
    let mut all = Vec::new();
    for (i, data) in files.iter().enumerate() {
        all.extend(maker.scan("f", data.as_bytes(), false).unwrap().positions("f", i as u64).unwrap());
    }
    for &(k, p) in &all {
        let e = first.entry(k).or_insert(p);
        *e = (*e).min(p);
    }
    files
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let dups: Vec<u128> = all
                .iter()
                .filter(|&&(k, p)| unpack_position(p).0 == i as u64 && first[&k] != p)
                .map(|&(_, p)| p)
                .collect();
            let scan = maker.scan("f", data.as_bytes(), false).unwrap();
            String::from_utf8(maker.attributes_of(&scan, &dups).0).unwrap()
        })
        .collect()
}

#[test]
fn documents_mode_marks_later_copies() {
    let m = maker(r#"{"name":"x","documents":{"attribute_name":"d","key":"$.text"},"skip_empty":true}"#);
    let out = dedupe(
        &m,
        &["{\"id\":\"a\",\"text\":\"hé\"}\n{\"id\":\"b\",\"text\":\" \"}\n", "{\"id\":\"c\",\"text\":\"hé\"}"],
    );
    assert_eq!(out[0], "{\"id\":\"a\",\"attributes\":{}}\n{\"id\":\"b\",\"attributes\":{\"d\":[]}}\n");
    assert_eq!(out[1], "{\"id\":\"c\",\"attributes\":{\"d\":[[0,2,1]]}}\n");
}

#[test]
fn paragraphs_and_ngrams_follow_slot_order() {
    let m = maker(r#"{"name":"x","paragraphs":{"attribute_name":"p"}}"#);
    let out = dedupe(&m, &["{\"id\":\"a\",\"text\":\"x\\ny\\nx\\n\"}\n{\"id\":\"b\",\"text\":\"\"}"]);
    assert_eq!(out[0], "{\"id\":\"a\",\"attributes\":{\"p\":[[4,5,1]]}}\n{\"id\":\"b\",\"attributes\":{}}\n");
    let m = maker(
        r#"{"name":"x","paragraphs":{"attribute_name":"p","by_ngram":{"ngram_length":2,"overlap_threshold":0.5}}}"#,
    );
    let out = dedupe(&m, &["{\"id\":\"a\",\"text\":\"a b c\\nb c d\\na b\"}"]);
    assert_eq!(out[0], "{\"id\":\"a\",\"attributes\":{\"p\":[[6,12,0.5]]}}\n");
}

#[test]
fn repeats_are_all_but_the_earliest_whatever_the_blob_order() {
    let (a, b, c) =
        (pack_position(0, 3, 0).unwrap(), pack_position(0, 9, 1).unwrap(), pack_position(2, 1, 0).unwrap());
    let first = blobs_by_partition(&[(5, c), (7, b)], 1);
    let second = blobs_by_partition(&[(5, a), (5, b), (9, c), (9, a)], 1);
    let got = find_repeats(&[&first[0].1, &second[0].1]).unwrap();
    let files: Vec<(u64, Vec<u128>)> =
        got.into_iter().map(|(f, blob)| (f, decode_positions(&blob).unwrap())).collect();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].0, 0);
    assert_eq!(files[0].1, vec![b]);
    assert_eq!(
        (files[1].0, {
            let mut v = files[1].1.clone();
            v.sort();
            v
        }),
        (2, vec![c, c])
    );
    assert_eq!(blobs_by_partition(&[(5, a), (6, a)], 2).iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![0, 1]);
}

#[test]
fn skeleton_writes_the_same_attributes_as_the_text() {
    let file = "{\"id\":\"a\",\"text\":\"a b c\\n\\nb c d\\na b\\n\\u00e9té 世\"}\n\n\
                {\"id\":\"b\",\"text\":\"\"}\n{\"id\":\"c\",\"text\":\" \"}\n{\"id\":\"d\",\"text\":\"a b c\"}\n";
    for section in [
        r#"{"name":"x","documents":{"attribute_name":"d","key":"$.text"},"skip_empty":true}"#,
        r#"{"name":"x","paragraphs":{"attribute_name":"p"},"min_words":2}"#,
        r#"{"name":"x","paragraphs":{"attribute_name":"p","by_ngram":{"ngram_length":2,"overlap_threshold":0.4}}}"#,
        r#"{"name":"x","paragraphs":{"attribute_name":"p","by_ngram":{"ngram_length":3,"skip_short_paragraphs":true}}}"#,
    ] {
        let m = maker(section);
        let scan = m.scan("f", file.as_bytes(), false).unwrap();
        let keys = scan.positions("f", 0).unwrap();
        assert_eq!(keys.len() as u64, scan.stats().keys);
        // every other key occurrence is a duplicate: many different marks
        let dups: Vec<u128> = keys.iter().step_by(2).map(|&(_, p)| p).collect();
        let skeleton = scan.encode();
        let decoded = FileScan::decode(&skeleton).unwrap();
        assert_eq!(m.attributes_of(&decoded, &dups), m.attributes_of(&scan, &dups), "{section}");
        assert_eq!(decoded.encode(), skeleton);
        assert!(!m.attributes_of(&scan, &dups).0.is_empty());
        for bad in [&skeleton[..skeleton.len() - 1], &skeleton[1..], &[skeleton.as_slice(), b"x"].concat()[..]] {
            assert!(matches!(FileScan::decode(bad), Err(DedupeError::Config(m)) if m.contains("corrupt")));
        }
    }
}

#[test]
fn compressed_input_is_read_by_its_extension() {
    use std::io::Write;
    let m = maker(r#"{"name":"x","paragraphs":{"attribute_name":"p"}}"#);
    let text = b"{\"id\":\"a\",\"text\":\"x\\ny\\nx\"}\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&text[..], 3).unwrap();
    let plain = m.scan("f.jsonl", text, false).unwrap().encode();
    assert_eq!(m.scan("f.jsonl.gz", &gz, true).unwrap().encode(), plain);
    assert_eq!(m.scan("f.jsonl.zst", &zst, true).unwrap().encode(), plain);
    assert_eq!(m.scan("f.jsonl", text, true).unwrap().encode(), plain);
    assert!(m.scan("f.jsonl.gz", &gz[..gz.len() / 2], true).is_err());
    // the same from files, twice (the kept buffers must not leak one file into the next)
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl.gz"), dir.path().join("b.jsonl.zst"));
    std::fs::write(&a, &gz).unwrap();
    std::fs::write(&b, &zst).unwrap();
    for path in [&a, &b, &a] {
        assert_eq!(m.scan_file(path.to_str().unwrap()).unwrap().encode(), plain);
    }
    let missing = dir.path().join("missing.jsonl.gz");
    let err = m.scan_file(missing.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("missing.jsonl.gz"), "{err}");
}

#[test]
fn positions_sort_by_file_line_slot() {
    let a = pack_position(0, 1, 5).unwrap();
    let b = pack_position(0, 2, 0).unwrap();
    let c = pack_position(1, 1, 0).unwrap();
    assert!(a < b && b < c);
    assert_eq!(unpack_position(b), (0, 2, 0));
    assert!(pack_position(0, 1, 1 << 24).is_none());
}
