//! The engine's values: a message, a field, a template's result, while a flow runs. JSON's
//! data model, as serde_json's `Value` has it (numbers are serde_json's), with one difference
//! that is the reason for this type: an object is held as a vector sorted by key, not as a
//! B-tree. Most objects are messages of a few fields, decoded once, read a few times and
//! dropped with the request; a B-tree gives each its own node of eleven slots, found by a
//! search per insert and walked node by node when it is dropped. An object grows into a B-tree
//! only past `SMALL` keys, so that one with many (a `Struct`, a map field) is never sorted one
//! insert at a time. Either way keys iterate in order, as serde_json's do: what is written from
//! an object reads the same.

use std::collections::btree_map::{self, BTreeMap};
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
pub use serde_json::Number;

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(Map),
}

/// The keys past which an object is a B-tree.
const SMALL: usize = 32;

/// An object's members, in key order, each key once.
#[derive(Clone, Default)]
pub struct Map {
    entries: Entries,
}

#[derive(Clone)]
enum Entries {
    Small(Vec<(String, Value)>),
    Large(BTreeMap<String, Value>),
}

impl Default for Entries {
    fn default() -> Entries {
        Entries::Small(Vec::new())
    }
}

impl Map {
    pub fn new() -> Map {
        Map::default()
    }

    pub fn len(&self) -> usize {
        match &self.entries {
            Entries::Small(entries) => entries.len(),
            Entries::Large(entries) => entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.entries {
            // A scan that compares lengths first touches the text of one key or two, where a
            // binary search compares the text of a key at each step.
            Entries::Small(entries) => {
                entries.iter().find(|(k, _)| k.len() == key.len() && k == key).map(|(_, v)| v)
            }
            Entries::Large(entries) => entries.get(key),
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match &mut self.entries {
            Entries::Small(entries) => match entries.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
                Ok(at) => entries.get_mut(at).map(|(_, v)| v),
                Err(_) => None,
            },
            Entries::Large(entries) => entries.get_mut(key),
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`, returning the value it had.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match &mut self.entries {
            Entries::Small(entries) => {
                // Members mostly come in order: the end is tried first.
                let at = match entries.last() {
                    Some((last, _)) if last.as_str() < key.as_str() => Err(entries.len()),
                    None => Err(0),
                    _ => entries.binary_search_by(|(k, _)| k.as_str().cmp(&key)),
                };
                match at {
                    Ok(at) => entries.get_mut(at).map(|(_, old)| std::mem::replace(old, value)),
                    Err(at) if entries.len() < SMALL => {
                        entries.insert(at, (key, value));
                        None
                    }
                    Err(_) => {
                        // Inserted one by one, which in order only appends: collecting would sort.
                        let mut large = BTreeMap::new();
                        for (key, value) in std::mem::take(entries) {
                            large.insert(key, value);
                        }
                        large.insert(key, value);
                        self.entries = Entries::Large(large);
                        None
                    }
                }
            }
            Entries::Large(entries) => entries.insert(key, value),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        match &mut self.entries {
            Entries::Small(entries) => match entries.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
                Ok(at) => Some(entries.remove(at).1),
                Err(_) => None,
            },
            Entries::Large(entries) => entries.remove(key),
        }
    }

    /// The value of `key`, `default` inserted first if it has none.
    pub fn get_or_insert_with(&mut self, key: &str, default: impl FnOnce() -> Value) -> Option<&mut Value> {
        if !self.contains_key(key) {
            self.insert(key.to_string(), default());
        }
        self.get_mut(key)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut Value) -> bool) {
        match &mut self.entries {
            Entries::Small(entries) => entries.retain_mut(|(k, v)| keep(k, v)),
            Entries::Large(entries) => entries.retain(|k, v| keep(k, v)),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        match &self.entries {
            Entries::Small(entries) => Iter::Small(entries.iter()),
            Entries::Large(entries) => Iter::Large(entries.iter()),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.iter().map(|(_, v)| v)
    }
}

#[derive(Clone)]
pub enum Iter<'a> {
    Small(std::slice::Iter<'a, (String, Value)>),
    Large(btree_map::Iter<'a, String, Value>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(entries) => entries.next().map(|(k, v)| (k, v)),
            Iter::Large(entries) => entries.next(),
        }
    }
}

pub enum IntoIter {
    Small(std::vec::IntoIter<(String, Value)>),
    Large(btree_map::IntoIter<String, Value>),
}

impl Iterator for IntoIter {
    type Item = (String, Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            IntoIter::Small(entries) => entries.next(),
            IntoIter::Large(entries) => entries.next(),
        }
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        match self.entries {
            Entries::Small(entries) => IntoIter::Small(entries.into_iter()),
            Entries::Large(entries) => IntoIter::Large(entries.into_iter()),
        }
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a String, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl Extend<(String, Value)> for Map {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, members: I) {
        for (key, value) in members {
            self.insert(key, value);
        }
    }
}

impl FromIterator<(String, Value)> for Map {
    /// A later member wins over an earlier one of its key, as in a JSON object.
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(members: I) -> Map {
        let mut map = Map::new();
        map.extend(members);
        map
    }
}

impl PartialEq for Map {
    fn eq(&self, other: &Map) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Value::Number(_))
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    pub fn is_array(&self) -> bool {
        matches!(self, Value::Array(_))
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }

    pub fn take(&mut self) -> Value {
        std::mem::take(self)
    }
}

/// The member `key` of an object, null when there is none (or no object), as in serde_json.
impl std::ops::Index<&str> for Value {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

/// As compact JSON, as serde_json's `Value` displays.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::codec::json_text(self))
    }
}

macro_rules! from_number {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Value {
                Value::Number(Number::from(n))
            }
        }
    )*};
}

from_number!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

impl From<f64> for Value {
    /// Not a number and the infinities, which JSON has not, are null, as in serde_json.
    fn from(n: f64) -> Value {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

macro_rules! from_variant {
    ($($variant:ident($t:ty)),*) => {$(
        impl From<$t> for Value {
            fn from(inner: $t) -> Value {
                Value::$variant(inner)
            }
        }
    )*};
}

from_variant!(Bool(bool), String(String), Number(Number), Object(Map), Array(Vec<Value>));

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}

impl FromIterator<Value> for Value {
    fn from_iter<I: IntoIterator<Item = Value>>(items: I) -> Value {
        Value::Array(items.into_iter().collect())
    }
}

/// serde_json's `json!` builds the engine's fixed values (error bodies) and tests' ones.
impl From<serde_json::Value> for Value {
    fn from(value: serde_json::Value) -> Value {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(members) => {
                Value::Object(members.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl PartialEq<serde_json::Value> for Value {
    fn eq(&self, other: &serde_json::Value) -> bool {
        match (self, other) {
            (Value::Null, serde_json::Value::Null) => true,
            (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
            (Value::Number(a), serde_json::Value::Number(b)) => a == b,
            (Value::String(a), serde_json::Value::String(b)) => a == b,
            (Value::Array(a), serde_json::Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a == b)
            }
            (Value::Object(a), serde_json::Value::Object(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && va == vb)
            }
            _ => false,
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(n) => n.serialize(serializer),
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(items) => serializer.collect_seq(items),
            Value::Object(members) => members.serialize(serializer),
        }
    }
}

impl Serialize for Map {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// serde_json's `json!`, making the engine's `Value`.
macro_rules! json {
    ($($json:tt)+) => {
        $crate::engine::value::Value::from(serde_json::json!($($json)+))
    };
}

pub(crate) use json;

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Deserialize::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Value>()? {
            members.push(member);
        }
        Ok(Value::Object(members.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(map: &Map) -> Vec<&str> {
        map.keys().map(String::as_str).collect()
    }

    #[test]
    fn members_iterate_in_key_order_whatever_order_they_came_in() {
        let map: Map = [("b", 2), ("c", 3), ("a", 1)]
            .map(|(k, v)| (k.to_string(), Value::from(v)))
            .into_iter()
            .collect();
        assert_eq!(keys(&map), ["a", "b", "c"]);
        assert_eq!(map.get("b"), Some(&Value::from(2)));
        assert_eq!(map.get("d"), None);
    }

    #[test]
    fn a_later_member_of_a_key_wins_as_in_json() {
        let value: Value = serde_json::from_str(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap();
        assert_eq!(value, json!({"a": 3, "b": 2}));
        let mut map = Map::new();
        assert_eq!(map.insert("a".into(), Value::from(1)), None);
        assert_eq!(map.insert("a".into(), Value::from(2)), Some(Value::from(1)));
        assert_eq!(map.len(), 1);
    }

    /// Past `SMALL` keys a map is a B-tree: the same members, the same order, the same answers,
    /// and equal to a map of the same members that never grew.
    #[test]
    fn a_map_grown_past_the_small_size_answers_as_before() {
        let key = |i: usize| format!("k{:03}", (i * 37) % 100);
        let mut grown = Map::new();
        for i in 0..100 {
            grown.insert(key(i), Value::from(i));
        }
        assert!(matches!(grown.entries, Entries::Large(_)));
        let mut sorted: Vec<String> = (0..100).map(key).collect();
        sorted.sort();
        assert_eq!(keys(&grown), sorted.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(grown.get("k037"), Some(&Value::from(1)));
        assert_eq!(grown.remove("k037"), Some(Value::from(1)));
        assert_eq!(grown.get("k037"), None);
        grown.retain(|k, _| k.as_str() < "k010");
        assert_eq!(
            keys(&grown),
            ["k000", "k001", "k002", "k003", "k004", "k005", "k006", "k007", "k008", "k009"]
        );
        let small: Map = keys(&grown)
            .into_iter()
            .map(|k| (k.to_string(), grown.get(k).cloned().unwrap_or_default()))
            .collect();
        assert!(matches!(small.entries, Entries::Small(_)));
        assert_eq!(small, grown);
    }

    #[test]
    fn values_read_and_write_as_serde_json_reads_and_writes_them() {
        let text = r#"{"n":null,"t":true,"i":-3,"u":18446744073709551615,"f":0.5,"s":"é\"","a":[1,{"z":[]}],"o":{}}"#;
        let ours: Value = serde_json::from_str(text).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(ours.to_string(), theirs.to_string());
        assert_eq!(serde_json::to_string(&ours).unwrap(), theirs.to_string());
        assert_eq!(Value::from(theirs), ours);
        assert_eq!(ours["a"], json!([1, {"z": []}]));
        assert_eq!(ours["missing"], Value::Null);
    }

    #[test]
    fn get_or_insert_with_inserts_only_when_absent() {
        let mut map = Map::new();
        if let Some(Value::Array(items)) = map.get_or_insert_with("a", || Value::Array(Vec::new())) {
            items.push(Value::from(1));
        }
        if let Some(Value::Array(items)) = map.get_or_insert_with("a", || Value::Array(Vec::new())) {
            items.push(Value::from(2));
        }
        assert_eq!(Value::Object(map), json!({"a": [1, 2]}));
    }
}
