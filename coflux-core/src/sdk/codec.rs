//! Converts serde data to and from the Coflux value encoding, so Rust values are readable by the
//! Python SDK and back: JSON objects become `{"type":"dict","items":[k1,v1,...]}` (keys sorted),
//! and on the way in Python's typed wrappers become plain JSON (`tuple`/`set` → array;
//! `datetime`, `date`, `time`, `decimal`, `uuid` → string; `duration` → seconds).
//!
//! Rust values go through [`to_plain`] and [`from_encoded`] rather than serde_json's own
//! conversions, so a map with structured keys (tuples, structs) is kept as a `dict` with those
//! keys (a tuple key as a `tuple`) and reads back.

use serde_json::{Map, Value as Json};

mod de;
mod ser;

pub(crate) use de::from_encoded;
use ser::DICT_MARKER;
pub(crate) use ser::to_plain;

/// Encodes plain JSON into the Coflux data encoding.
pub fn encode_json(value: Json) -> Json {
    match value {
        Json::Object(mut map) => {
            if let Some(reference) = super::refs::marker_to_ref(&map) {
                return reference;
            }
            if let Some(stream) = marker_to_handle(&map) {
                return stream;
            }
            if let Some(dict) = marker_to_dict(&mut map) {
                return dict;
            }
            let mut entries: Vec<(String, Json)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut items = Vec::with_capacity(entries.len() * 2);
            for (k, v) in entries {
                items.push(Json::String(k));
                items.push(encode_json(v));
            }
            let mut out = Map::new();
            out.insert("type".into(), Json::String("dict".into()));
            out.insert("items".into(), Json::Array(items));
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(items.into_iter().map(encode_json).collect()),
        other => other,
    }
}

/// Decodes the Coflux data encoding into plain JSON (see the module docs for the mapping).
pub fn decode_json(value: Json) -> Json {
    match value {
        Json::Object(mut map) => {
            let kind = map.get("type").and_then(Json::as_str).map(str::to_owned);
            match kind.as_deref() {
                Some("dict") => {
                    let items = match map.remove("items") {
                        Some(Json::Array(items)) => items,
                        _ => Vec::new(),
                    };
                    let mut out = Map::new();
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        let key = match decode_json(k) {
                            Json::String(s) => s,
                            other => other.to_string(),
                        };
                        out.insert(key, decode_json(v));
                    }
                    Json::Object(out)
                }
                Some("tuple" | "set") => match map.remove("items") {
                    Some(Json::Array(items)) => {
                        Json::Array(items.into_iter().map(decode_json).collect())
                    }
                    _ => Json::Array(Vec::new()),
                },
                Some("datetime" | "date" | "time" | "decimal" | "uuid" | "duration") => {
                    map.remove("value").unwrap_or(Json::Null)
                }
                _ => Json::Object(map.into_iter().map(|(k, v)| (k, decode_json(v))).collect()),
            }
        }
        Json::Array(items) => Json::Array(items.into_iter().map(decode_json).collect()),
        other => other,
    }
}

/// `{DICT_MARKER: [k1, v1, ...]}` → `{"type":"dict","items":[k1, v1, ...]}` (encoded; a key
/// that is an array becomes a `tuple`, as Python's dict keys are).
fn marker_to_dict(map: &mut Map<String, Json>) -> Option<Json> {
    if map.len() != 1 || !map.get(DICT_MARKER).is_some_and(Json::is_array) {
        return None;
    }
    let Some(Json::Array(items)) = map.remove(DICT_MARKER) else {
        return None;
    };
    let items = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Json::Array(parts) if i % 2 == 0 => {
                let mut tuple = Map::new();
                tuple.insert("type".into(), Json::String("tuple".into()));
                tuple.insert(
                    "items".into(),
                    Json::Array(parts.into_iter().map(encode_json).collect()),
                );
                Json::Object(tuple)
            }
            other => encode_json(other),
        })
        .collect();
    let mut out = Map::new();
    out.insert("type".into(), Json::String("dict".into()));
    out.insert("items".into(), Json::Array(items));
    Some(Json::Object(out))
}

/// The key of the marker object a handle serializes to; [`super::encode_json`] turns it into
/// `{"type":"stream","id":...}`, as the Python SDK writes its `Stream` handles.
pub(crate) const STREAM_MARKER: &str = "\u{0}coflux:stream";

/// `{MARKER: id, stride?}` → `{"type":"stream","id":id, "stride"?}` (see [`STREAM_MARKER`]).
pub(crate) fn marker_to_handle(map: &Map<String, Json>) -> Option<Json> {
    let id = map.get(STREAM_MARKER)?.as_str()?;
    let mut out = Map::new();
    out.insert("type".into(), Json::String("stream".into()));
    out.insert("id".into(), Json::String(id.into()));
    if let Some(stride) = map.get("stride") {
        out.insert("stride".into(), stride.clone());
    }
    Some(Json::Object(out))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use serde_json::json;

    #[test]
    fn objects_round_trip_through_the_dict_encoding() {
        let plain = json!({"b": [1, {"x": null}], "a": "s"});
        let encoded = encode_json(plain.clone());
        assert_eq!(
            encoded,
            json!({"type":"dict","items":["a","s","b",[1,{"type":"dict","items":["x",null]}]]})
        );
        assert_eq!(decode_json(encoded), plain);
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Pair(u8, String),
        Box { w: u32, h: Option<u32> },
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct State {
        bytes: Vec<u8>,
        by_cell: BTreeMap<(u32, u32), Shape>,
        by_shape: Vec<(Shape, u64)>,
        counts: BTreeMap<u16, i64>,
        named: HashMap<String, Vec<Shape>>,
        unit: (),
        missing: Option<String>,
    }

    fn state() -> State {
        State {
            bytes: vec![0, 7, 255],
            by_cell: BTreeMap::from([((0, 1), Shape::Empty), ((2, 3), Shape::Circle(1.5))]),
            by_shape: vec![(Shape::Pair(1, "a".into()), 9)],
            counts: BTreeMap::from([(7, -1), (300, 2)]),
            named: HashMap::from([(
                "boxes".into(),
                vec![
                    Shape::Box { w: 2, h: None },
                    Shape::Box { w: 3, h: Some(4) },
                ],
            )]),
            unit: (),
            missing: None,
        }
    }

    #[test]
    fn serde_values_round_trip_also_with_structured_map_keys() {
        let encoded = encode_json(to_plain(&state()).unwrap());
        let cells = &encoded["items"][1];
        assert_eq!(
            cells,
            &json!({"type": "dict", "items": [
                {"type": "tuple", "items": [0, 1]}, "Empty",
                {"type": "tuple", "items": [2, 3]},
                {"type": "dict", "items": ["Circle", 1.5]},
            ]}),
            "{encoded}"
        );
        assert_eq!(from_encoded::<State>(encoded).unwrap(), state());
    }

    #[test]
    fn values_without_structured_keys_encode_as_serde_json_writes_them() {
        let mut plain = state();
        plain.by_cell.clear();
        let ours = to_plain(&plain).unwrap();
        assert_eq!(ours, serde_json::to_value(&plain).unwrap());
        assert_eq!(ours["counts"], json!({"7": -1, "300": 2}));
        let decoded: State = from_encoded(encode_json(ours)).unwrap();
        assert_eq!(decoded, plain);
    }

    #[test]
    fn python_dicts_read_with_numeric_string_and_tuple_keys() {
        let python = json!({"type": "dict", "items": [7, "a", 300, "b"]});
        let numeric: BTreeMap<u32, String> = from_encoded(python.clone()).unwrap();
        assert_eq!(
            numeric,
            BTreeMap::from([(7, "a".into()), (300, "b".into())])
        );
        let text: HashMap<String, String> = from_encoded(python).unwrap();
        assert_eq!(text["7"], "a");
        let tuples = json!({"type": "dict", "items": [{"type": "tuple", "items": [1, "x"]}, true]});
        let keyed: BTreeMap<(u8, String), bool> = from_encoded(tuples).unwrap();
        assert_eq!(keyed, BTreeMap::from([((1, "x".into()), true)]));
        let wrapped =
            json!({"type": "dict", "items": ["when", {"type": "date", "value": "2024-01-02"}]});
        let dates: HashMap<String, String> = from_encoded(wrapped).unwrap();
        assert_eq!(dates["when"], "2024-01-02");
        let error = from_encoded::<BTreeMap<u32, u8>>(json!({"type": "dict", "items": ["x", 1]}));
        assert!(error.is_err());
    }

    #[test]
    fn python_wrappers_decode_to_plain_json() {
        let py = json!({"type":"dict","items":["when",{"type":"date","value":"2024-01-02"},"pair",{"type":"tuple","items":[1,2]}]});
        assert_eq!(decode_json(py), json!({"when":"2024-01-02","pair":[1,2]}));
    }
}
