//! Every intrinsic function: its name, how many arguments it takes, and what it does with them,
//! following AWS's argument rules. Adding a function touches this file only.

use std::collections::HashSet;

use base64::Engine as _;
use serde_json::{Map, Value};

/// The intrinsic functions of the JSONPath query language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

use Function::*;

const ALL: &[(Function, &str)] = &[
    (Format, "States.Format"),
    (StringToJson, "States.StringToJson"),
    (JsonToString, "States.JsonToString"),
    (Array, "States.Array"),
    (ArrayPartition, "States.ArrayPartition"),
    (ArrayContains, "States.ArrayContains"),
    (ArrayRange, "States.ArrayRange"),
    (ArrayGetItem, "States.ArrayGetItem"),
    (ArrayLength, "States.ArrayLength"),
    (ArrayUnique, "States.ArrayUnique"),
    (Base64Encode, "States.Base64Encode"),
    (Base64Decode, "States.Base64Decode"),
    (Hash, "States.Hash"),
    (JsonMerge, "States.JsonMerge"),
    (MathRandom, "States.MathRandom"),
    (MathAdd, "States.MathAdd"),
    (StringSplit, "States.StringSplit"),
    (Uuid, "States.UUID"),
];

/// The longest string Base64Encode, Base64Decode and Hash take.
const MAX_TEXT: usize = 10_000;
/// The most items ArrayRange produces.
const MAX_RANGE: usize = 1_000;

impl Function {
    pub fn named(name: &str) -> Option<Self> {
        ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(f, _)| *f == self)
            .map(|(_, n)| *n)
            .expect("every function has a name")
    }

    /// The argument counts it accepts, inclusive.
    fn arity(self) -> (usize, usize) {
        match self {
            Format => (1, usize::MAX),
            Array => (0, usize::MAX),
            Uuid => (0, 0),
            StringToJson | JsonToString | ArrayLength | ArrayUnique | Base64Encode
            | Base64Decode => (1, 1),
            ArrayPartition | ArrayContains | ArrayGetItem | Hash | MathAdd | StringSplit => (2, 2),
            MathRandom => (2, 3),
            ArrayRange | JsonMerge => (3, 3),
        }
    }

    /// What the definition can be checked for before anything runs.
    /// `count` arguments, the first of which, if a string literal, is `template` as written.
    pub fn check_arguments(self, count: usize, template: Option<&str>) -> Result<(), String> {
        let (least, most) = self.arity();
        if count < least || count > most {
            let expected = match (least, most) {
                (n, m) if n == m => format!("{n}"),
                (n, usize::MAX) => format!("at least {n}"),
                (n, m) => format!("{n} to {m}"),
            };
            return Err(format!(
                "{} takes {expected} arguments, got {}",
                self.name(),
                count
            ));
        }
        if self == Format {
            let raw = template.ok_or("States.Format takes a string literal template first")?;
            let placeholders = placeholders(raw);
            if placeholders != count - 1 {
                return Err(format!(
                    "States.Format has {placeholders} {{}} placeholders and {} arguments after the template",
                    count - 1
                ));
            }
        }
        Ok(())
    }
}

fn placeholders(raw: &str) -> usize {
    let mut count = 0;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                count += 1;
            }
            _ => {}
        }
    }
    count
}

fn text<'v>(value: &'v Value, function: Function, what: &str) -> Result<&'v str, String> {
    value.as_str().ok_or_else(|| {
        format!(
            "the {what} of {} must be a string, got {value}",
            function.name()
        )
    })
}

fn array<'v>(value: &'v Value, function: Function, what: &str) -> Result<&'v Vec<Value>, String> {
    value.as_array().ok_or_else(|| {
        format!(
            "the {what} of {} must be an array, got {value}",
            function.name()
        )
    })
}

/// A number rounded as AWS rounds (Java's `Math.round`: halves go up).
fn rounded(value: &Value, function: Function, what: &str) -> Result<i64, String> {
    let number = value
        .as_f64()
        .filter(|_| value.is_number())
        .ok_or_else(|| {
            format!(
                "the {what} of {} must be a number, got {value}",
                function.name()
            )
        })?;
    Ok((number + 0.5).floor() as i64)
}

/// An integer argument: a number without a fraction.
fn integer(value: &Value, function: Function, what: &str) -> Result<i64, String> {
    value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| f as i64)
        })
        .ok_or_else(|| {
            format!(
                "the {what} of {} must be an integer, got {value}",
                function.name()
            )
        })
}

fn bounded(text: &str, function: Function) -> Result<&str, String> {
    if text.chars().count() > MAX_TEXT {
        return Err(format!(
            "the input of {} has more than {MAX_TEXT} characters",
            function.name()
        ));
    }
    Ok(text)
}

/// A value as `States.Format` prints it: strings bare, objects and arrays as Java prints its
/// maps and lists (`{a=1, b=[]}`).
fn formatted(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(formatted).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(key, value)| format!("{key}={}", formatted(value)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn format(raw_template: &str, values: &[Value]) -> String {
    let mut out = String::new();
    let mut next = values.iter();
    let mut chars = raw_template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            }
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                if let Some(value) = next.next() {
                    out.push_str(&formatted(value));
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Applies a function to its arguments' values; `template` is the first argument as written
/// when it is a string literal (States.Format's escapes).
pub fn apply(
    function: Function,
    values: Vec<Value>,
    template: Option<&str>,
) -> Result<Value, String> {
    let v = values.as_slice();
    let f = function;
    match function {
        Format => {
            let raw = template.ok_or("States.Format takes a string literal template first")?;
            Ok(Value::String(format(raw, &v[1..])))
        }
        StringToJson => {
            let text = text(&v[0], f, "argument")?;
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(text)
                .map_err(|err| format!("the argument of States.StringToJson is not JSON: {err}"))
        }
        JsonToString => Ok(Value::String(v[0].to_string())),
        Array => Ok(Value::Array(values.clone())),
        ArrayPartition => {
            let size = integer(&v[1], f, "chunk size")?;
            if size < 1 {
                return Err("the chunk size of States.ArrayPartition must be positive".into());
            }
            Ok(Value::Array(
                array(&v[0], f, "first argument")?
                    .chunks(usize::try_from(size).unwrap_or(usize::MAX))
                    .map(|chunk| Value::Array(chunk.to_vec()))
                    .collect(),
            ))
        }
        ArrayContains => Ok(Value::Bool(
            array(&v[0], f, "first argument")?.contains(&v[1]),
        )),
        ArrayRange => {
            let (start, end, step) = (
                integer(&v[0], f, "start")?,
                integer(&v[1], f, "end")?,
                integer(&v[2], f, "step")?,
            );
            if step == 0 {
                return Err("the step of States.ArrayRange must not be zero".into());
            }
            let mut items = Vec::new();
            let mut at = start;
            while (step > 0 && at <= end) || (step < 0 && at >= end) {
                if items.len() == MAX_RANGE {
                    return Err(format!(
                        "States.ArrayRange produces at most {MAX_RANGE} items"
                    ));
                }
                items.push(Value::from(at));
                at += step;
            }
            Ok(Value::Array(items))
        }
        ArrayGetItem => {
            let items = array(&v[0], f, "first argument")?;
            let index = integer(&v[1], f, "index")?;
            usize::try_from(index)
                .ok()
                .and_then(|index| items.get(index))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "the index {index} of States.ArrayGetItem is out of bounds for an array of {}",
                        items.len()
                    )
                })
        }
        ArrayLength => Ok(Value::from(array(&v[0], f, "argument")?.len())),
        ArrayUnique => {
            let mut seen = HashSet::new();
            Ok(Value::Array(
                array(&v[0], f, "argument")?
                    .iter()
                    .filter(|item| seen.insert(item.to_string()))
                    .cloned()
                    .collect(),
            ))
        }
        Base64Encode => Ok(Value::String(
            base64::engine::general_purpose::STANDARD
                .encode(bounded(text(&v[0], f, "argument")?, f)?),
        )),
        Base64Decode => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(bounded(text(&v[0], f, "argument")?, f)?)
                .map_err(|err| {
                    format!("the argument of States.Base64Decode is not base64: {err}")
                })?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| "the bytes States.Base64Decode decoded are not UTF-8".into())
        }
        Hash => {
            let data = match &v[0] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let data = bounded(&data, f)?.as_bytes();
            let digest: Vec<u8> = match text(&v[1], f, "algorithm")? {
                "MD5" => <md5::Md5 as md5::Digest>::digest(data).to_vec(),
                "SHA-1" => <sha1::Sha1 as sha1::Digest>::digest(data).to_vec(),
                "SHA-256" => <sha2::Sha256 as sha2::Digest>::digest(data).to_vec(),
                "SHA-384" => <sha2::Sha384 as sha2::Digest>::digest(data).to_vec(),
                "SHA-512" => <sha2::Sha512 as sha2::Digest>::digest(data).to_vec(),
                other => {
                    return Err(format!(
                        "States.Hash does not know the algorithm {other:?}: use MD5, SHA-1, SHA-256, SHA-384 or SHA-512"
                    ));
                }
            };
            Ok(Value::String(
                digest.iter().map(|b| format!("{b:02x}")).collect(),
            ))
        }
        JsonMerge => {
            if v[2] != Value::Bool(false) {
                return Err(
                    "States.JsonMerge supports only a shallow merge: its third argument must be false"
                        .into(),
                );
            }
            let (Value::Object(a), Value::Object(b)) = (&v[0], &v[1]) else {
                return Err("States.JsonMerge merges two objects".into());
            };
            let mut merged: Map<String, Value> = a.clone();
            merged.extend(b.clone());
            Ok(Value::Object(merged))
        }
        MathRandom => {
            let (start, end) = (rounded(&v[0], f, "start")?, rounded(&v[1], f, "end")?);
            if let Some(seed) = v.get(2) {
                integer(seed, f, "seed")?;
            }
            if start >= end {
                return Err("the start of States.MathRandom must be less than its end".into());
            }
            Ok(Value::from(rand::random_range(start..end)))
        }
        MathAdd => rounded(&v[0], f, "first number")?
            .checked_add(rounded(&v[1], f, "second number")?)
            .map(Value::from)
            .ok_or_else(|| "the sum of States.MathAdd overflows".into()),
        StringSplit => {
            let delimiters: Vec<char> = text(&v[1], f, "delimiters")?.chars().collect();
            Ok(Value::Array(
                text(&v[0], f, "string")?
                    .split(delimiters.as_slice())
                    .filter(|part| !part.is_empty())
                    .map(|part| Value::String(part.to_owned()))
                    .collect(),
            ))
        }
        Uuid => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
    }
}
