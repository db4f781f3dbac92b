//! Converts serde data to and from the Coflux value encoding, so Rust values are readable by the
//! Python SDK and back: JSON objects become `{"type":"dict","items":[k1,v1,...]}` (keys sorted),
//! and on the way in Python's typed wrappers become plain JSON (`tuple`/`set` → array;
//! `datetime`, `date`, `time`, `decimal`, `uuid` → string; `duration` → seconds).

use serde_json::{Map, Value as Json};

/// Encodes plain JSON into the Coflux data encoding.
pub fn encode_json(value: Json) -> Json {
    match value {
        Json::Object(map) => {
            if let Some(reference) = super::refs::marker_to_ref(&map) {
                return reference;
            }
            if let Some(stream) = marker_to_handle(&map) {
                return stream;
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

    #[test]
    fn python_wrappers_decode_to_plain_json() {
        let py = json!({"type":"dict","items":["when",{"type":"date","value":"2024-01-02"},"pair",{"type":"tuple","items":[1,2]}]});
        assert_eq!(decode_json(py), json!({"when":"2024-01-02","pair":[1,2]}));
    }
}
