//! Intrinsic functions (`States.Format(...)`, `States.StringToJson(...)`, ...) in `.$` values:
//! parsed from their text when the definition loads (an unknown function or a wrong number of
//! arguments is a load error, as in AWS's validator) and evaluated against an [`Env`]. What each
//! function does is in [`functions`].

pub mod functions;

use serde_json::Value;

use super::env::Env;
use super::path::Path;
use functions::Function;

/// One argument of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A string literal: its text with escapes resolved, and as written (for `States.Format`,
    /// where an escaped `\{` is not a placeholder).
    Text {
        value: String,
        raw: String,
    },
    Json(Value),
    Path(Path),
    Call(Call),
}

/// A parsed call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub function: Function,
    pub args: Vec<Arg>,
}

/// Whether a `.$` value is an intrinsic function rather than a path.
pub fn is_call(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

/// Parses a whole expression: one call and nothing after it.
pub fn parse(text: &str) -> Result<Call, String> {
    let mut parser = Parser { text, at: 0 };
    let call = parser.call()?;
    parser.skip_spaces();
    if !parser.rest().is_empty() {
        return Err(format!(
            "unexpected text after the call: {:?}",
            parser.rest()
        ));
    }
    Ok(call)
}

impl Call {
    /// The call's value; a failure is a message naming the function.
    pub fn evaluate(&self, env: &Env) -> Result<Value, String> {
        let values = self
            .args
            .iter()
            .map(|arg| arg.value(env))
            .collect::<Result<Vec<_>, _>>()?;
        let template = match self.args.first() {
            Some(Arg::Text { raw, .. }) => Some(raw.as_str()),
            _ => None,
        };
        functions::apply(self.function, values, template)
    }
}

impl Arg {
    /// The argument's value (a nested call evaluated, a path read).
    pub fn value(&self, env: &Env) -> Result<Value, String> {
        match self {
            Arg::Text { value, .. } => Ok(Value::String(value.clone())),
            Arg::Json(value) => Ok(value.clone()),
            Arg::Path(path) => path
                .read(env)
                .map_err(|_| format!("the path '{}' selects nothing", path.text())),
            Arg::Call(call) => call.evaluate(env),
        }
    }
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

    fn call(&mut self) -> Result<Call, String> {
        self.skip_spaces();
        let name_len = self
            .rest()
            .find('(')
            .ok_or_else(|| format!("expected a function call at {:?}", self.rest()))?;
        let name = self.rest()[..name_len].trim().to_owned();
        let function =
            Function::named(&name).ok_or_else(|| format!("{name} is not an intrinsic function"))?;
        self.at += name_len + 1;
        let mut args = Vec::new();
        self.skip_spaces();
        if self.rest().starts_with(')') {
            self.at += 1;
        } else {
            loop {
                args.push(self.argument()?);
                self.skip_spaces();
                match self.rest().chars().next() {
                    Some(',') => self.at += 1,
                    Some(')') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(format!("expected ',' or ')' at {:?}", self.rest())),
                }
            }
        }
        let template = match args.first() {
            Some(Arg::Text { raw, .. }) => Some(raw.as_str()),
            _ => None,
        };
        function.check_arguments(args.len(), template)?;
        Ok(Call { function, args })
    }

    fn argument(&mut self) -> Result<Arg, String> {
        self.skip_spaces();
        let rest = self.rest();
        if rest.starts_with('\'') {
            return self.text_literal();
        }
        if rest.starts_with('$') {
            let text = self.path();
            return Path::parse(&text).map(Arg::Path);
        }
        if rest.starts_with("States.") {
            return self.call().map(Arg::Call);
        }
        let end = rest.find([',', ')']).unwrap_or(rest.len());
        let token = rest[..end].trim();
        self.at += end;
        match serde_json::from_str::<Value>(token) {
            Ok(value @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(Arg::Json(value)),
            _ => Err(format!("{token:?} is not a valid intrinsic argument")),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_parse_with_nested_calls_paths_and_literals() {
        let call =
            parse("States.ArrayLength(States.Array(1, 'a', $.x, $$.Execution.Name, $v, null))")
                .unwrap();
        assert_eq!(call.function, Function::ArrayLength);
        let Arg::Call(inner) = &call.args[0] else {
            panic!("{call:?}")
        };
        assert_eq!(inner.args.len(), 6);
    }

    #[test]
    fn bad_calls_are_load_errors() {
        assert!(parse("States.Nope(1)").is_err());
        assert!(parse("States.Format('unterminated").is_err());
        assert!(parse("States.Format('x') trailing").is_err());
        assert!(
            parse("States.Format('line\\nbreak')").is_err(),
            "\\n is not an escape"
        );
        assert!(
            parse("States.Format('it's')").is_err(),
            "an unescaped quote ends the literal"
        );
        assert!(parse("States.ArrayLength(1, 2)").is_err(), "wrong arity");
        assert!(parse("States.UUID(1)").is_err());
        assert!(parse("States.MathAdd(1, {})").is_err());
        assert!(
            parse("States.Format($.x)").is_err(),
            "the template is a literal"
        );
    }
}
