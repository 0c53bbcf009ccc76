//! Intrinsic functions (`States.Format(...)`, `States.StringToJson(...)`, ...), as used in `.$`
//! values: parsed from their text form and evaluated against the state input and context.

use std::collections::HashSet;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::sfn::paths;

/// One argument of a call.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// A string literal: its text with escapes resolved, and as written (for `States.Format`,
    /// where an escaped `\{` is not a placeholder).
    Text {
        value: String,
        raw: String,
    },
    Json(Value),
    Path(String),
    Call(String, Vec<Arg>),
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn skip_spaces(&mut self) {
        while self.rest().starts_with(' ') {
            self.at += 1;
        }
    }

    fn call(&mut self) -> Result<Arg, String> {
        self.skip_spaces();
        let name_len = self
            .rest()
            .find('(')
            .ok_or_else(|| format!("expected a function call at {:?}", self.rest()))?;
        let name = self.rest()[..name_len].trim().to_owned();
        if !name.starts_with("States.") {
            return Err(format!("{name} is not an intrinsic function"));
        }
        self.at += name_len + 1;
        let mut args = Vec::new();
        self.skip_spaces();
        if self.rest().starts_with(')') {
            self.at += 1;
            return Ok(Arg::Call(name, args));
        }
        loop {
            args.push(self.argument()?);
            self.skip_spaces();
            match self.rest().chars().next() {
                Some(',') => self.at += 1,
                Some(')') => {
                    self.at += 1;
                    return Ok(Arg::Call(name, args));
                }
                _ => return Err(format!("expected ',' or ')' at {:?}", self.rest())),
            }
        }
    }

    fn argument(&mut self) -> Result<Arg, String> {
        self.skip_spaces();
        let rest = self.rest();
        if rest.starts_with('\'') {
            return self.text_literal();
        }
        if rest.starts_with('$') {
            return Ok(Arg::Path(self.path()));
        }
        if rest.starts_with("States.") {
            return self.call();
        }
        let end = rest.find([',', ')']).unwrap_or(rest.len());
        let token = rest[..end].trim();
        self.at += end;
        serde_json::from_str::<Value>(token)
            .ok()
            .filter(|value| !value.is_object() && !value.is_array() && !value.is_string())
            .map(Arg::Json)
            .ok_or_else(|| format!("{token:?} is not a valid argument"))
    }

    fn text_literal(&mut self) -> Result<Arg, String> {
        let start = self.at;
        self.at += 1;
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                // Only these escapes exist; anything else is an error, as in Step Functions.
                '\\' => match chars.next() {
                    Some((_, escaped @ ('\'' | '{' | '}' | '\\'))) => value.push(escaped),
                    Some((_, other)) => {
                        return Err(format!(
                            "\\{other} is not a valid escape in an intrinsic literal"
                        ));
                    }
                    None => return Err("a literal ends with a dangling backslash".into()),
                },
                '\'' => {
                    let raw = self.text[start + 1..self.at + offset].to_owned();
                    self.at += offset + 1;
                    return Ok(Arg::Text { value, raw });
                }
                other => value.push(other),
            }
        }
        Err("unterminated string literal".into())
    }

    /// A path runs to the next top-level ',' or ')' (brackets and quotes may contain either).
    fn path(&mut self) -> String {
        let rest = self.rest();
        let mut depth = 0;
        let mut quoted = false;
        let mut end = rest.len();
        for (offset, c) in rest.char_indices() {
            match c {
                '\'' => quoted = !quoted,
                '[' if !quoted => depth += 1,
                ']' if !quoted => depth -= 1,
                ',' | ')' if !quoted && depth == 0 => {
                    end = offset;
                    break;
                }
                _ => {}
            }
        }
        self.at += end;
        rest[..end].trim().to_owned()
    }
}

/// Evaluates an intrinsic function expression.
pub fn evaluate(expression: &str, input: &Value, context: &Value) -> Result<Value, String> {
    let mut parser = Parser {
        text: expression,
        at: 0,
    };
    let call = parser.call()?;
    parser.skip_spaces();
    if !parser.rest().is_empty() {
        return Err(format!(
            "unexpected text after the call: {:?}",
            parser.rest()
        ));
    }
    value_of(&call, input, context)
}

fn value_of(arg: &Arg, input: &Value, context: &Value) -> Result<Value, String> {
    match arg {
        Arg::Text { value, .. } => Ok(Value::String(value.clone())),
        Arg::Json(value) => Ok(value.clone()),
        Arg::Path(path) => paths::read(path, input, context),
        Arg::Call(name, args) => call(name, args, input, context),
    }
}

fn text(value: &Value, what: &str) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{what} must be a string, got {value}"))
}

fn integer(value: &Value, what: &str) -> Result<i64, String> {
    value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| f as i64)
        })
        .ok_or_else(|| format!("{what} must be an integer, got {value}"))
}

fn array<'v>(value: &'v Value, what: &str) -> Result<&'v Vec<Value>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("{what} must be an array, got {value}"))
}

fn arity(name: &str, args: &[Value], expected: usize) -> Result<(), String> {
    if args.len() == expected {
        Ok(())
    } else {
        Err(format!(
            "{name} takes {expected} arguments, got {}",
            args.len()
        ))
    }
}

fn format(raw_template: &str, values: &[Value]) -> Result<String, String> {
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
                let value = next
                    .next()
                    .ok_or("States.Format has more {} placeholders than arguments")?;
                match value {
                    Value::String(s) => out.push_str(s),
                    Value::Object(_) | Value::Array(_) => {
                        return Err(
                            "States.Format arguments must be strings, numbers, booleans or null"
                                .into(),
                        );
                    }
                    other => out.push_str(&other.to_string()),
                }
            }
            other => out.push(other),
        }
    }
    if next.next().is_some() {
        return Err("States.Format has more arguments than {} placeholders".into());
    }
    Ok(out)
}

fn call(name: &str, args: &[Arg], input: &Value, context: &Value) -> Result<Value, String> {
    if name == "States.Format" {
        let Some(Arg::Text { raw, .. }) = args.first() else {
            return Err("States.Format needs a string literal template first".into());
        };
        let values = args[1..]
            .iter()
            .map(|arg| value_of(arg, input, context))
            .collect::<Result<Vec<_>, _>>()?;
        return format(raw, &values).map(Value::String);
    }
    let values = args
        .iter()
        .map(|arg| value_of(arg, input, context))
        .collect::<Result<Vec<_>, _>>()?;
    let v = values.as_slice();
    match name {
        "States.StringToJson" => {
            arity(name, v, 1)?;
            serde_json::from_str(&text(&v[0], "the argument")?)
                .map_err(|err| format!("not JSON: {err}"))
        }
        "States.JsonToString" => {
            arity(name, v, 1)?;
            Ok(Value::String(v[0].to_string()))
        }
        "States.Array" => Ok(Value::Array(values)),
        "States.ArrayPartition" => {
            arity(name, v, 2)?;
            let size = integer(&v[1], "the chunk size")?;
            if size < 1 {
                return Err("the chunk size must be positive".into());
            }
            Ok(Value::Array(
                array(&v[0], "the first argument")?
                    .chunks(usize::try_from(size).unwrap_or(usize::MAX))
                    .map(|chunk| Value::Array(chunk.to_vec()))
                    .collect(),
            ))
        }
        "States.ArrayContains" => {
            arity(name, v, 2)?;
            Ok(Value::Bool(
                array(&v[0], "the first argument")?.contains(&v[1]),
            ))
        }
        "States.ArrayRange" => {
            arity(name, v, 3)?;
            let (start, end, step) = (
                integer(&v[0], "start")?,
                integer(&v[1], "end")?,
                integer(&v[2], "step")?,
            );
            if step == 0 {
                return Err("the step must not be zero".into());
            }
            let mut items = Vec::new();
            let mut at = start;
            while (step > 0 && at <= end) || (step < 0 && at >= end) {
                items.push(Value::from(at));
                if items.len() > 1000 {
                    return Err("States.ArrayRange produces at most 1000 items".into());
                }
                at += step;
            }
            Ok(Value::Array(items))
        }
        "States.ArrayGetItem" => {
            arity(name, v, 2)?;
            let index = usize::try_from(integer(&v[1], "the index")?)
                .map_err(|_| "the index must not be negative")?;
            array(&v[0], "the first argument")?
                .get(index)
                .cloned()
                .ok_or_else(|| format!("index {index} is out of bounds"))
        }
        "States.ArrayLength" => {
            arity(name, v, 1)?;
            Ok(Value::from(array(&v[0], "the argument")?.len()))
        }
        "States.ArrayUnique" => {
            arity(name, v, 1)?;
            let mut seen = HashSet::new();
            Ok(Value::Array(
                array(&v[0], "the argument")?
                    .iter()
                    .filter(|item| seen.insert(item.to_string()))
                    .cloned()
                    .collect(),
            ))
        }
        "States.Base64Encode" => {
            arity(name, v, 1)?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(text(&v[0], "the argument")?),
            ))
        }
        "States.Base64Decode" => {
            arity(name, v, 1)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text(&v[0], "the argument")?)
                .map_err(|err| format!("not base64: {err}"))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| "the decoded bytes are not UTF-8".into())
        }
        "States.Hash" => {
            arity(name, v, 2)?;
            let data = match &v[0] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let digest: Vec<u8> = match text(&v[1], "the algorithm")?.as_str() {
                "MD5" => <md5::Md5 as md5::Digest>::digest(data.as_bytes()).to_vec(),
                "SHA-1" => <sha1::Sha1 as sha1::Digest>::digest(data.as_bytes()).to_vec(),
                "SHA-256" => <sha2::Sha256 as sha2::Digest>::digest(data.as_bytes()).to_vec(),
                "SHA-384" => <sha2::Sha384 as sha2::Digest>::digest(data.as_bytes()).to_vec(),
                "SHA-512" => <sha2::Sha512 as sha2::Digest>::digest(data.as_bytes()).to_vec(),
                other => return Err(format!("unknown hash algorithm {other}")),
            };
            Ok(Value::String(
                digest.iter().map(|b| format!("{b:02x}")).collect(),
            ))
        }
        "States.JsonMerge" => {
            arity(name, v, 3)?;
            if v[2] != Value::Bool(false) {
                return Err("States.JsonMerge supports only a shallow merge (false)".into());
            }
            let (Value::Object(a), Value::Object(b)) = (&v[0], &v[1]) else {
                return Err("States.JsonMerge merges two objects".into());
            };
            let mut merged: Map<String, Value> = a.clone();
            merged.extend(b.clone());
            Ok(Value::Object(merged))
        }
        "States.MathRandom" => {
            if !(2..=3).contains(&v.len()) {
                return Err("States.MathRandom takes a start and an end".into());
            }
            let (start, end) = (integer(&v[0], "start")?, integer(&v[1], "end")?);
            if start >= end {
                return Err("start must be less than end".into());
            }
            Ok(Value::from(rand::random_range(start..end)))
        }
        "States.MathAdd" => {
            arity(name, v, 2)?;
            integer(&v[0], "the first number")?
                .checked_add(integer(&v[1], "the second number")?)
                .map(Value::from)
                .ok_or_else(|| "the sum overflows".into())
        }
        "States.StringSplit" => {
            arity(name, v, 2)?;
            let delimiters: Vec<char> = text(&v[1], "the delimiters")?.chars().collect();
            Ok(Value::Array(
                text(&v[0], "the string")?
                    .split(delimiters.as_slice())
                    .filter(|part| !part.is_empty())
                    .map(|part| Value::String(part.to_owned()))
                    .collect(),
            ))
        }
        "States.UUID" => {
            arity(name, v, 0)?;
            Ok(Value::String(uuid::Uuid::new_v4().to_string()))
        }
        other => Err(format!("unknown intrinsic function {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expression: &str, input: Value) -> Result<Value, String> {
        evaluate(expression, &input, &json!({"Execution": {"Name": "run-1"}}))
    }

    #[test]
    fn format_fills_placeholders() {
        assert_eq!(
            eval(
                "States.Format('Hello, my name is {}.', $.name)",
                json!({"name": "Arnav"})
            )
            .unwrap(),
            json!("Hello, my name is Arnav.")
        );
        assert_eq!(
            eval(
                "States.Format('Run {} has {} objects \\{literal\\}', $$.Execution.Name, $.n)",
                json!({"n": 3})
            )
            .unwrap(),
            json!("Run run-1 has 3 objects {literal}")
        );
        assert!(eval("States.Format('{} {}', 'one')", json!({})).is_err());
    }

    #[test]
    fn json_conversions() {
        assert_eq!(
            eval(
                "States.StringToJson($.s)",
                json!({"s": "{\"foo\":\"bar\"}"})
            )
            .unwrap(),
            json!({"foo": "bar"})
        );
        assert_eq!(
            eval("States.StringToJson('60')", json!({})).unwrap(),
            json!(60)
        );
        assert_eq!(
            eval("States.JsonToString($.o)", json!({"o": {"a": [1]}})).unwrap(),
            json!("{\"a\":[1]}")
        );
    }

    #[test]
    fn arrays() {
        assert_eq!(
            eval(
                "States.Array('Foo', 2022, $.someJson, null)",
                json!({"someJson": {"a": 1}})
            )
            .unwrap(),
            json!(["Foo", 2022, {"a": 1}, null])
        );
        assert_eq!(
            eval("States.ArrayPartition($.a, 2)", json!({"a": [1, 2, 3]})).unwrap(),
            json!([[1, 2], [3]])
        );
        assert_eq!(
            eval("States.ArrayContains($.a, 2)", json!({"a": [1, 2]})).unwrap(),
            json!(true)
        );
        assert_eq!(
            eval("States.ArrayRange(1, 9, 3)", json!({})).unwrap(),
            json!([1, 4, 7])
        );
        assert_eq!(
            eval("States.ArrayGetItem($.a, 1)", json!({"a": [5, 6]})).unwrap(),
            json!(6)
        );
        assert_eq!(
            eval("States.ArrayLength($.a)", json!({"a": [5, 6]})).unwrap(),
            json!(2)
        );
        assert_eq!(
            eval("States.ArrayUnique($.a)", json!({"a": [1, 1, 2]})).unwrap(),
            json!([1, 2])
        );
    }

    #[test]
    fn encodings_hashes_and_math() {
        assert_eq!(
            eval("States.Base64Encode('abc')", json!({})).unwrap(),
            json!("YWJj")
        );
        assert_eq!(
            eval("States.Base64Decode('YWJj')", json!({})).unwrap(),
            json!("abc")
        );
        assert_eq!(
            eval("States.Hash('abc', 'SHA-256')", json!({})).unwrap(),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            eval("States.Hash('abc', 'MD5')", json!({})).unwrap(),
            json!("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(
            eval("States.MathAdd($.n, 1)", json!({"n": 41})).unwrap(),
            json!(42)
        );
        let r = eval("States.MathRandom(1, 3)", json!({}))
            .unwrap()
            .as_i64()
            .unwrap();
        assert!((1..3).contains(&r));
        assert_eq!(
            eval("States.StringSplit('a,b;c', ',;')", json!({})).unwrap(),
            json!(["a", "b", "c"])
        );
        assert_eq!(
            eval("States.UUID()", json!({}))
                .unwrap()
                .as_str()
                .unwrap()
                .len(),
            36
        );
        assert_eq!(
            eval(
                "States.JsonMerge($.a, $.b, false)",
                json!({"a": {"x": 1, "y": 1}, "b": {"y": 2}})
            )
            .unwrap(),
            json!({"x": 1, "y": 2})
        );
    }

    #[test]
    fn nested_calls_and_errors() {
        assert_eq!(
            eval(
                "States.ArrayLength(States.Array(1, States.MathAdd(1, 1)))",
                json!({})
            )
            .unwrap(),
            json!(2)
        );
        assert!(eval("States.Nope(1)", json!({})).is_err());
        assert!(eval("States.Format('unterminated", json!({})).is_err());
        assert!(eval("States.Format('x') trailing", json!({})).is_err());
        assert!(
            eval("States.Format('line\\nbreak')", json!({})).is_err(),
            "\\n is not an escape"
        );
        assert_eq!(
            eval("States.Format('it\\'s')", json!({})).unwrap(),
            json!("it's")
        );
        assert!(
            eval("States.Format('it's')", json!({})).is_err(),
            "an unescaped quote ends the literal"
        );
        assert!(eval("States.ArrayGetItem($.a, 5)", json!({"a": []})).is_err());
    }
}
