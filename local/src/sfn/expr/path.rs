//! Paths: `$...` into the value at hand, `$$...` into the context object, `$name...` into a
//! workflow variable. Parsed (and so checked) when the definition loads.

use serde_json::Value;
use serde_json_path::JsonPath;

use super::env::Env;

/// Where a path reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    Input,
    Context,
    Variable(String),
}

/// A parsed path.
#[derive(Debug, Clone)]
pub struct Path {
    text: String,
    root: Root,
    query: JsonPath,
    /// Whether it can select several nodes, in which case its value is an array of them.
    many: bool,
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// A path that selected nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing;

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

impl Path {
    /// Parses `$...`, `$$...` or `$name...`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = |why: String| format!("the path {text:?} is invalid: {why}");
        let (root, query) = if let Some(rest) = text.strip_prefix("$$") {
            (Root::Context, format!("${rest}"))
        } else if let Some(rest) = text.strip_prefix('$') {
            if rest.starts_with(is_name_start) {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (
                    Root::Variable(rest[..end].to_owned()),
                    format!("${}", &rest[end..]),
                )
            } else {
                (Root::Input, text.to_owned())
            }
        } else {
            return Err(invalid("a path starts with $".into()));
        };
        let parsed = JsonPath::parse(&query).map_err(|err| invalid(err.to_string()))?;
        let many = query.contains('*')
            || query.contains("..")
            || query.contains("?(")
            || query.contains(':')
            || query.contains(',');
        Ok(Self {
            text: text.to_owned(),
            root,
            query: parsed,
            many,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The value the path selects.
    pub fn read(&self, env: &Env) -> Result<Value, Missing> {
        let target = match &self.root {
            Root::Input => env.input,
            Root::Context => env.context,
            Root::Variable(name) => env.variables.get(name).ok_or(Missing)?,
        };
        let nodes = self.query.query(target);
        if self.many {
            return Ok(Value::Array(nodes.all().into_iter().cloned().collect()));
        }
        nodes.exactly_one().cloned().map_err(|_| Missing)
    }

    /// AWS's message for an InputPath, OutputPath or `...Path` field that selects nothing.
    pub fn invalid(&self) -> String {
        format!(
            "Invalid path '{}' : No results for path: {}",
            self.text,
            bracketed(&self.text)
        )
    }

    /// AWS's message for a `.$` field or ErrorPath/CausePath whose path selects nothing.
    pub fn not_found(&self, field: &str, input: &Value) -> String {
        format!(
            "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{input}'",
            self.text
        )
    }
}

/// `$.a.b` as `$['a']['b']`, as AWS prints a path that selected nothing.
fn bracketed(path: &str) -> String {
    let Some(rest) = path.strip_prefix('$') else {
        return path.to_owned();
    };
    let mut out = String::from("$");
    for part in rest.split('.').filter(|part| !part.is_empty()) {
        match part.find('[') {
            Some(at) => {
                out.push_str(&format!("['{}']", &part[..at]));
                out.push_str(&part[at..]);
            }
            None => out.push_str(&format!("['{part}']")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfn::expr::env::Variables;
    use serde_json::json;

    fn read(path: &str, input: Value) -> Result<Value, Missing> {
        let variables = Variables::from([("x".to_owned(), json!({"a": [1, 2]}))]);
        let context = json!({"Execution": {"Name": "run"}});
        Path::parse(path)
            .unwrap()
            .read(&Env::new(&input, &context, &variables))
    }

    #[test]
    fn paths_read_the_input_the_context_and_variables() {
        assert_eq!(read("$.a", json!({"a": 1})), Ok(json!(1)));
        assert_eq!(read("$$.Execution.Name", json!({})), Ok(json!("run")));
        assert_eq!(read("$x.a[1]", json!({})), Ok(json!(2)));
        assert_eq!(read("$x", json!({})), Ok(json!({"a": [1, 2]})));
        assert_eq!(read("$y", json!({})), Err(Missing));
        assert_eq!(read("$.missing", json!({})), Err(Missing));
        assert_eq!(
            read("$.a[0:2]", json!({"a": [1, 2, 3, 4]})),
            Ok(json!([1, 2]))
        );
    }

    #[test]
    fn a_malformed_path_is_a_load_error_and_misses_say_where() {
        assert!(Path::parse("a.b").is_err());
        assert!(Path::parse("$.a[").is_err());
        assert_eq!(
            Path::parse("$.NoSuchInputPath").unwrap().invalid(),
            "Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']"
        );
    }
}
