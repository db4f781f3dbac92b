//! Deserializes any serde value straight from the Coflux value encoding: a `dict` becomes a
//! map whose keys are read as values of the key type (strings, numbers, tuples, structs), so a
//! map with structured keys reads back; `tuple`/`set` are sequences and Python's typed wrappers
//! their plain value, as [`super::decode_json`] gives them. Numeric keys read as strings and
//! numbers written as strings read as numeric keys (the forms serde_json and Python use).

use serde::de::{self, Deserializer, Error as _, IntoDeserializer, Visitor};
use serde_json::{Map, Value as Json};

type Error = serde_json::Error;

/// Reads a `T` from encoded data.
pub(crate) fn from_encoded<T: de::DeserializeOwned>(data: Json) -> Result<T, Error> {
    T::deserialize(Encoded(data))
}

/// Encoded data being read.
struct Encoded(Json);

/// What an encoded object is.
enum Object {
    Dict(Vec<Json>),
    Items(Vec<Json>),
    Wrapped(Json),
    Plain(Map<String, Json>),
}

fn classify(mut map: Map<String, Json>) -> Object {
    let kind = map.get("type").and_then(Json::as_str).map(str::to_owned);
    let items = |map: &mut Map<String, Json>| match map.remove("items") {
        Some(Json::Array(items)) => items,
        _ => Vec::new(),
    };
    match kind.as_deref() {
        Some("dict") => Object::Dict(items(&mut map)),
        Some("tuple" | "set") => Object::Items(items(&mut map)),
        Some("datetime" | "date" | "time" | "decimal" | "uuid" | "duration") => {
            Object::Wrapped(map.remove("value").unwrap_or(Json::Null))
        }
        _ => Object::Plain(map),
    }
}

impl<'de> Deserializer<'de> for Encoded {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Json::Array(items) => visitor.visit_seq(Seq(items.into_iter())),
            Json::Object(map) => match classify(map) {
                Object::Dict(items) => visitor.visit_map(Pairs {
                    items: items.into_iter(),
                    value: None,
                }),
                Object::Items(items) => visitor.visit_seq(Seq(items.into_iter())),
                Object::Wrapped(value) => Encoded(value).deserialize_any(visitor),
                Object::Plain(map) => visitor.visit_map(Pairs {
                    items: map
                        .into_iter()
                        .flat_map(|(k, v)| [Json::String(k), v])
                        .collect::<Vec<_>>()
                        .into_iter(),
                    value: None,
                }),
            },
            scalar => scalar.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Json::Null => visitor.visit_none(),
            other => visitor.visit_some(Encoded(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (name, value) = match self.0 {
            Json::String(name) => (name, None),
            Json::Object(map) => {
                let mut pairs: Vec<(Json, Json)> = match classify(map) {
                    Object::Dict(items) => {
                        let mut it = items.into_iter();
                        std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
                    }
                    Object::Plain(map) => map.into_iter().map(|(k, v)| (k.into(), v)).collect(),
                    _ => Vec::new(),
                };
                match (pairs.pop(), pairs.is_empty()) {
                    (Some((Json::String(name), value)), true) => (name, Some(value)),
                    _ => {
                        return Err(Error::custom(
                            "an enum variant is a name or a one-entry map",
                        ));
                    }
                }
            }
            other => return Err(Error::custom(format!("not an enum variant: {other}"))),
        };
        visitor.visit_enum(Variant { name, value })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// A map key: as [`Encoded`], with numbers read as strings and strings as numbers when the key
/// type asks for the other form.
struct Key(Json);

macro_rules! parse_key {
    ($($method:ident => $visit:ident: $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Json::String(text) => match text.parse::<$ty>() {
                    Ok(v) => visitor.$visit(v),
                    Err(_) => Err(Error::invalid_value(de::Unexpected::Str(&text), &visitor)),
                },
                other => Encoded(other).$method(visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Key {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        Encoded(self.0).deserialize_any(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Any key reads as text (a structured one as its JSON), as `decode_json` shows it.
        match super::decode_json(self.0) {
            Json::String(text) => visitor.visit_string(text),
            other => visitor.visit_string(other.to_string()),
        }
    }

    parse_key! {
        deserialize_bool => visit_bool: bool,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        Encoded(self.0).deserialize_option(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        Encoded(self.0).deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

struct Seq(std::vec::IntoIter<Json>);

impl<'de> de::SeqAccess<'de> for Seq {
    type Error = Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(Encoded(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// A map's entries, from a flat `[k1, v1, k2, v2, ...]` list.
struct Pairs {
    items: std::vec::IntoIter<Json>,
    value: Option<Json>,
}

impl<'de> de::MapAccess<'de> for Pairs {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(key) = self.items.next() else {
            return Ok(None);
        };
        self.value = Some(self.items.next().unwrap_or(Json::Null));
        seed.deserialize(Key(key)).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| Error::custom("a map value without its key"))?;
        seed.deserialize(Encoded(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() / 2)
    }
}

/// An enum variant: its name and content.
struct Variant {
    name: String,
    value: Option<Json>,
}

impl<'de> de::EnumAccess<'de> for Variant {
    type Error = Error;
    type Variant = Content;

    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Content), Error> {
        let name: de::value::StringDeserializer<Error> = self.name.into_deserializer();
        Ok((seed.deserialize(name)?, Content(self.value)))
    }
}

/// A variant's content (`None`: a unit variant).
struct Content(Option<Json>);

impl<'de> de::VariantAccess<'de> for Content {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.0 {
            None | Some(Json::Null) => Ok(()),
            Some(_) => Err(Error::custom("a unit variant with content")),
        }
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(Encoded(self.0.unwrap_or(Json::Null)))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        Deserializer::deserialize_seq(Encoded(self.0.unwrap_or(Json::Null)), visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        Deserializer::deserialize_map(Encoded(self.0.unwrap_or(Json::Null)), visitor)
    }
}
