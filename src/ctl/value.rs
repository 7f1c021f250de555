//! D-Bus values as JSON. Properties arrive as variants; turned into JSON they print as they
//! are (`--json`, `watch`) and deserialize into voyandzctl's own types with serde, so no
//! property is read field by field.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use zbus::{OwnedVariant, Variant};

/// `value` as JSON: numbers, strings and booleans as themselves, arrays and structures as
/// arrays, dictionaries as objects (keys as text).
pub fn json(value: &Variant<'_>) -> Json {
    match value {
        Variant::U8(n) => Json::from(*n),
        Variant::Bool(b) => Json::from(*b),
        Variant::I16(n) => Json::from(*n),
        Variant::U16(n) => Json::from(*n),
        Variant::I32(n) => Json::from(*n),
        Variant::U32(n) => Json::from(*n),
        Variant::I64(n) => Json::from(*n),
        Variant::U64(n) => Json::from(*n),
        Variant::F64(n) => Json::from(*n),
        Variant::Str(s) => Json::from(s.as_str()),
        Variant::Signature(s) => Json::from(s.to_string()),
        Variant::ObjectPath(path) => Json::from(path.as_str()),
        Variant::Variant(inner) => json(inner),
        Variant::Array(array) => array.inner().iter().map(json).collect(),
        Variant::Structure(fields) => fields.fields().iter().map(json).collect(),
        Variant::Dict(dict) => Json::Object(
            dict.iter()
                .map(|(key, value)| (text(&json(key)), json(value)))
                .collect(),
        ),
        Variant::Fd(_) => Json::Null,
    }
}

/// `value` for a person: a string as it is, anything else as JSON.
pub fn text(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// D-Bus properties (`GetAll`, `GetManagedObjects`, a signal's) as a JSON object.
pub fn object<'v, 'a: 'v>(
    properties: impl IntoIterator<Item = (impl ToString, &'v Variant<'a>)>,
) -> serde_json::Map<String, Json> {
    (properties.into_iter())
        .map(|(name, value)| (name.to_string(), json(value)))
        .collect()
}

/// D-Bus properties read into `T`, whose fields are named after them; a property `T` needs
/// and the server lacks is an error that names it.
pub fn read<T: DeserializeOwned>(
    properties: &HashMap<String, OwnedVariant>,
) -> Result<T, serde_json::Error> {
    let properties = properties.iter().map(|(name, value)| (name, &**value));
    serde_json::from_value(Json::Object(object(properties)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(value: impl Into<Variant<'static>>) -> OwnedVariant {
        OwnedVariant::try_from(value.into()).expect("a plain value")
    }

    #[test]
    fn properties_become_json() {
        let urls = owned(vec!["/stream/ts".to_owned(), "/ts".to_owned()]);
        let reload = owned(("2026-12-07T02:40:01.123+00:00", "ok", "1 stream added"));
        assert_eq!(json(&urls), serde_json::json!(["/stream/ts", "/ts"]));
        assert_eq!(
            text(&json(&reload)),
            r#"["2026-12-07T02:40:01.123+00:00","ok","1 stream added"]"#
        );
        assert_eq!(text(&json(&owned("idle"))), "idle");
        assert_eq!(text(&json(&owned(42u64))), "42");
    }
}
