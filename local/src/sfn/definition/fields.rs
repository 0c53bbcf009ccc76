//! Reading a state's fields with the checks AWS's validator makes: the right JSON type, no
//! field the state type does not have, no two fields that exclude each other. Every error names
//! the field by its location in the definition (`/States/Name/Field`), as AWS does.

use serde_json::{Map, Value};

use crate::sfn::expr::path::Path;
use crate::sfn::expr::reference::ResultPath;
use crate::sfn::expr::template::Template;

/// A definition error: AWS's code and message.
pub fn invalid(code: &str, message: impl std::fmt::Display, at: &str) -> String {
    format!("{code}: {message} at {at}")
}

/// The object of one state (or of one of its nested objects) and where it is.
pub struct Fields<'a> {
    pub at: String,
    pub object: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub fn new(value: &'a Value, at: impl Into<String>) -> Result<Self, String> {
        let at = at.into();
        match value {
            Value::Object(object) => Ok(Self { at, object }),
            other => Err(invalid(
                "SCHEMA_VALIDATION_FAILED",
                format!("Expected an object, got {other}"),
                &at,
            )),
        }
    }

    pub fn at(&self, field: &str) -> String {
        format!("{}/{field}", self.at)
    }

    fn wrong(&self, field: &str, expected: &str) -> String {
        invalid(
            "SCHEMA_VALIDATION_FAILED",
            format!("The value for the field '{field}' must be {expected}"),
            &self.at(field),
        )
    }

    /// Refuses any field not in `known`.
    pub fn only(&self, known: &[&str], kind: &str) -> Result<(), String> {
        match self
            .object
            .keys()
            .find(|key| !known.contains(&key.as_str()))
        {
            Some(key) => Err(invalid(
                "SCHEMA_VALIDATION_FAILED",
                format!("Field '{key}' is not supported by {kind}"),
                &self.at(key),
            )),
            None => Ok(()),
        }
    }

    /// Refuses two fields of which only one may be given.
    pub fn exclusive(&self, fields: &[&str]) -> Result<(), String> {
        let given: Vec<&&str> = fields.iter().filter(|f| self.has(f)).collect();
        if given.len() > 1 {
            return Err(invalid(
                "SCHEMA_VALIDATION_FAILED",
                format!(
                    "These fields cannot be used together: {}",
                    given
                        .iter()
                        .map(|f| format!("'{f}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &self.at,
            ));
        }
        Ok(())
    }

    pub fn has(&self, field: &str) -> bool {
        self.object.contains_key(field)
    }

    pub fn value(&self, field: &str) -> Option<&'a Value> {
        self.object.get(field)
    }

    pub fn string(&self, field: &str) -> Result<Option<String>, String> {
        match self.object.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(self.wrong(field, "a string")),
        }
    }

    pub fn required_string(&self, field: &str) -> Result<String, String> {
        self.string(field)?.ok_or_else(|| {
            invalid(
                "SCHEMA_VALIDATION_FAILED",
                format!("These fields are required: [{field}]"),
                &self.at,
            )
        })
    }

    pub fn boolean(&self, field: &str) -> Result<Option<bool>, String> {
        match self.object.get(field) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(self.wrong(field, "a boolean")),
        }
    }

    pub fn number(&self, field: &str) -> Result<Option<f64>, String> {
        match self.object.get(field) {
            None => Ok(None),
            Some(value @ Value::Number(_)) => Ok(value.as_f64()),
            Some(_) => Err(self.wrong(field, "a number")),
        }
    }

    /// A non-negative whole number.
    pub fn count(&self, field: &str) -> Result<Option<u64>, String> {
        match self.object.get(field) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(field, "a non-negative integer")),
        }
    }

    /// A positive whole number of seconds.
    pub fn positive(&self, field: &str) -> Result<Option<u64>, String> {
        match self.count(field)? {
            Some(0) => Err(self.wrong(field, "a positive integer")),
            other => Ok(other),
        }
    }

    pub fn path(&self, field: &str) -> Result<Option<Path>, String> {
        self.string(field)?
            .map(|text| {
                Path::parse(&text)
                    .map_err(|why| invalid("SCHEMA_VALIDATION_FAILED", why, &self.at(field)))
            })
            .transpose()
    }

    pub fn template(&self, field: &str) -> Result<Option<Template>, String> {
        self.object
            .get(field)
            .map(|value| {
                Template::parse(value, field)
                    .map_err(|why| invalid("SCHEMA_VALIDATION_FAILED", why, &self.at(field)))
            })
            .transpose()
    }

    pub fn result_path(&self) -> Result<ResultPath, String> {
        ResultPath::parse(self.object.get("ResultPath"))
            .map_err(|why| invalid("SCHEMA_VALIDATION_FAILED", why, &self.at("ResultPath")))
    }

    /// InputPath or OutputPath: absent is `$`, null discards to `{}`.
    pub fn io_path(&self, field: &str) -> Result<IoPath, String> {
        match self.object.get(field) {
            None => Ok(IoPath::All),
            Some(Value::Null) => Ok(IoPath::Discard),
            Some(Value::String(_)) => Ok(IoPath::Path(self.path(field)?.expect("present"))),
            Some(_) => Err(self.wrong(field, "a path or null")),
        }
    }

    /// A nested object, e.g. `ItemReader`.
    pub fn object(&self, field: &str) -> Result<Option<Fields<'a>>, String> {
        self.object
            .get(field)
            .map(|value| Fields::new(value, self.at(field)))
            .transpose()
    }

    pub fn array(&self, field: &str) -> Result<Option<&'a Vec<Value>>, String> {
        match self.object.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(self.wrong(field, "an array")),
        }
    }

    /// A number given literally as `Name` or read at run time from `NamePath`.
    pub fn number_or_path(&self, name: &str) -> Result<Option<NumberField>, String> {
        let path_name = format!("{name}Path");
        self.exclusive(&[name, &path_name])?;
        if let Some(number) = self.number(name)? {
            return Ok(Some(NumberField::Fixed(number)));
        }
        Ok(self.path(&path_name)?.map(|path| NumberField::Path {
            field: path_name,
            path,
        }))
    }
}

/// InputPath and OutputPath.
#[derive(Debug, Clone, PartialEq)]
pub enum IoPath {
    All,
    Discard,
    Path(Path),
}

/// A number field with a `...Path` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum NumberField {
    Fixed(f64),
    Path { field: String, path: Path },
}
