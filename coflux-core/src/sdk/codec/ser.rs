//! Serializes any serde value to plain JSON as `serde_json::to_value` does, except that a map
//! whose keys are neither strings nor numbers (tuples, structs, ...) is kept: it becomes a
//! [`DICT_MARKER`] object listing its keys and values, which [`super::encode_json`] turns into a
//! Coflux `dict` with those keys.

use serde::ser::{self, Error as _, Serialize};
use serde_json::{Map, Number, Value as Json};

/// The key of the marker object a map with structured keys serializes to:
/// `{DICT_MARKER: [k1, v1, k2, v2, ...]}`.
pub(crate) const DICT_MARKER: &str = "\u{0}coflux:dict";

type Error = serde_json::Error;

/// `value` as plain JSON (see the module docs).
pub(crate) fn to_plain<T: Serialize + ?Sized>(value: &T) -> Result<Json, Error> {
    value.serialize(Plain)
}

struct Plain;

fn variant(name: &str, value: Json) -> Json {
    let mut map = Map::new();
    map.insert(name.to_owned(), value);
    Json::Object(map)
}

impl ser::Serializer for Plain {
    type Ok = Json;
    type Error = Error;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Seq;
    type SerializeMap = Pairs;
    type SerializeStruct = Fields;
    type SerializeStructVariant = Fields;

    fn serialize_bool(self, v: bool) -> Result<Json, Error> {
        Ok(Json::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Json, Error> {
        Ok(Json::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Json, Error> {
        Ok(Json::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Json, Error> {
        Ok(Json::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Json, Error> {
        Ok(Json::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Json, Error> {
        serde_json::value::Serializer.serialize_i128(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Json, Error> {
        Ok(Json::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Json, Error> {
        Ok(Json::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Json, Error> {
        Ok(Json::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Json, Error> {
        Ok(Json::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Json, Error> {
        serde_json::value::Serializer.serialize_u128(v)
    }
    fn serialize_f32(self, v: f32) -> Result<Json, Error> {
        Ok(Number::from_f64(f64::from(v)).map_or(Json::Null, Json::Number))
    }
    fn serialize_f64(self, v: f64) -> Result<Json, Error> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn serialize_char(self, v: char) -> Result<Json, Error> {
        Ok(Json::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Json, Error> {
        Ok(Json::String(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Json, Error> {
        Ok(Json::Array(v.iter().map(|b| Json::from(*b)).collect()))
    }
    fn serialize_none(self) -> Result<Json, Error> {
        Ok(Json::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Json, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Json, Error> {
        Ok(Json::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Json, Error> {
        Ok(Json::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        name: &'static str,
    ) -> Result<Json, Error> {
        Ok(Json::String(name.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Json, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        name: &'static str,
        value: &T,
    ) -> Result<Json, Error> {
        Ok(variant(name, value.serialize(Plain)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, Error> {
        Ok(Seq {
            items: Vec::with_capacity(len.unwrap_or(0)),
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        name: &'static str,
        len: usize,
    ) -> Result<Seq, Error> {
        Ok(Seq {
            items: Vec::with_capacity(len),
            variant: Some(name),
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Pairs, Error> {
        Ok(Pairs {
            pairs: Vec::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Fields, Error> {
        Ok(Fields {
            fields: Map::new(),
            variant: None,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        name: &'static str,
        _: usize,
    ) -> Result<Fields, Error> {
        Ok(Fields {
            fields: Map::new(),
            variant: Some(name),
        })
    }
}

/// A sequence, tuple or tuple variant being serialized.
struct Seq {
    items: Vec<Json>,
    variant: Option<&'static str>,
}

impl Seq {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.items.push(value.serialize(Plain)?);
        Ok(())
    }
    fn finish(self) -> Json {
        let array = Json::Array(self.items);
        match self.variant {
            Some(name) => variant(name, array),
            None => array,
        }
    }
}

impl ser::SerializeSeq for Seq {
    type Ok = Json;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Json, Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for Seq {
    type Ok = Json;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Json, Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for Seq {
    type Ok = Json;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Json, Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for Seq {
    type Ok = Json;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Json, Error> {
        Ok(self.finish())
    }
}

/// A map being serialized: its keys as values, whatever their type.
struct Pairs {
    pairs: Vec<(Json, Json)>,
    key: Option<Json>,
}

impl ser::SerializeMap for Pairs {
    type Ok = Json;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(Plain)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error::custom("a map value without its key"))?;
        self.pairs.push((key, value.serialize(Plain)?));
        Ok(())
    }
    fn end(self) -> Result<Json, Error> {
        // Keys JSON can hold (strings, and numbers and booleans as serde_json writes them) make
        // an object, as before; any other key keeps the whole map as a marker.
        let textual = |k: &Json| matches!(k, Json::String(_) | Json::Number(_) | Json::Bool(_));
        if self.pairs.iter().all(|(k, _)| textual(k)) {
            let mut map = Map::new();
            for (key, value) in self.pairs {
                let key = match key {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                map.insert(key, value);
            }
            return Ok(Json::Object(map));
        }
        let items = self.pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
        Ok(variant(DICT_MARKER, Json::Array(items)))
    }
}

/// A struct or struct variant being serialized.
struct Fields {
    fields: Map<String, Json>,
    variant: Option<&'static str>,
}

impl Fields {
    fn insert<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        self.fields.insert(key.to_owned(), value.serialize(Plain)?);
        Ok(())
    }
    fn finish(self) -> Json {
        let object = Json::Object(self.fields);
        match self.variant {
            Some(name) => variant(name, object),
            None => object,
        }
    }
}

impl ser::SerializeStruct for Fields {
    type Ok = Json;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.insert(key, value)
    }
    fn end(self) -> Result<Json, Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for Fields {
    type Ok = Json;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.insert(key, value)
    }
    fn end(self) -> Result<Json, Error> {
        Ok(self.finish())
    }
}
