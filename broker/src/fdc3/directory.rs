//! The FDC3 App Directory (appd v2): what apps there are and which intents they listen for.
//!
//! Records come from untrusted JSON (a file, or a `/v2/apps` answer). Each record is checked
//! field by field; a bad one is reported by its index, appId and field and skipped, and the
//! rest load.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// Longest appId, title, intent or context type name accepted.
pub const MAX_NAME: usize = 256;
/// Longest description, tooltip or URL accepted.
pub const MAX_TEXT: usize = 8192;
/// Most records one directory may hold.
pub const MAX_RECORDS: usize = 10_000;

/// One app of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// Its id.
    pub app_id: String,
    /// The pre-2.0 name, if it has one.
    pub name: Option<String>,
    /// Shown to people.
    pub title: String,
    /// What it does.
    pub description: Option<String>,
    /// A hint on hover.
    pub tooltip: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// Who makes it.
    pub publisher: Option<String>,
    /// Icon URLs.
    pub icons: Vec<String>,
    /// Screenshot URLs.
    pub screenshots: Vec<String>,
    /// `type` (`web`, `native`, ...).
    pub kind: String,
    /// Where a web app lives (`details.url`).
    pub url: Option<String>,
    /// The intents it listens for.
    pub intents: Vec<IntentDecl>,
}

/// An intent an app says it listens for (`interop.intents.listensFor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentDecl {
    /// The intent's name.
    pub name: String,
    /// Shown to people.
    pub display_name: Option<String>,
    /// The context types it takes.
    pub contexts: Vec<String>,
    /// What it returns: a context type, `channel` or `channel<type>`.
    pub result_type: Option<String>,
}

impl AppRecord {
    /// A record with only an id and title (a platform app the directory does not describe).
    pub fn new(app_id: &str, title: &str) -> Self {
        Self {
            app_id: app_id.to_owned(),
            name: None,
            title: title.to_owned(),
            description: None,
            tooltip: None,
            version: None,
            publisher: None,
            icons: Vec::new(),
            screenshots: Vec::new(),
            kind: "web".to_owned(),
            url: None,
            intents: Vec::new(),
        }
    }

    /// Its declaration of `intent`, if it listens for it.
    pub fn intent(&self, intent: &str) -> Option<&IntentDecl> {
        self.intents.iter().find(|i| i.name == intent)
    }
}

/// A record that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its position in the list.
    pub index: usize,
    /// Its appId, if it had a readable one.
    pub app_id: Option<String>,
    /// The field at fault (`details.url`, `interop.intents.listensFor.ViewChart.contexts`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.app_id {
            Some(id) => write!(f, "app {id:?} (record {}): {}: {}", self.index, self.field, self.message),
            None => write!(f, "record {}: {}: {}", self.index, self.field, self.message),
        }
    }
}

/// A directory that could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Not JSON.
    #[error("the App Directory is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not a list of records nor `{"applications": [...]}`.
    #[error("the App Directory is neither a list of apps nor an object with an \"applications\" list")]
    Shape,
    /// More records than [`MAX_RECORDS`].
    #[error("the App Directory has {0} records, over the limit of {MAX_RECORDS}")]
    TooMany(usize),
}

/// The apps the agent knows, by appId.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    apps: BTreeMap<String, AppRecord>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record; a record with the same appId is replaced.
    pub fn insert(&mut self, record: AppRecord) {
        self.apps.insert(record.app_id.clone(), record);
    }

    /// The record of `app_id`.
    pub fn get(&self, app_id: &str) -> Option<&AppRecord> {
        self.apps.get(app_id)
    }

    /// Every record, by appId.
    pub fn apps(&self) -> impl Iterator<Item = &AppRecord> {
        self.apps.values()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// Parses appd v2 JSON: a list of records, or an object whose `applications` is one (the
    /// `/v2/apps` answer). Returns the good records and a problem for each skipped one; a
    /// repeated appId is a problem (the first one stays).
    pub fn parse(text: &str) -> Result<(Vec<AppRecord>, Vec<Problem>), DirectoryError> {
        let value: Value = serde_json::from_str(text).map_err(|e| DirectoryError::NotJson(e.to_string()))?;
        let list = match &value {
            Value::Array(list) => list,
            Value::Object(o) => match o.get("applications") {
                Some(Value::Array(list)) => list,
                _ => return Err(DirectoryError::Shape),
            },
            _ => return Err(DirectoryError::Shape),
        };
        if list.len() > MAX_RECORDS {
            return Err(DirectoryError::TooMany(list.len()));
        }
        let mut good: Vec<AppRecord> = Vec::new();
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (index, raw) in list.iter().enumerate() {
            match record(raw) {
                Ok(r) => {
                    if seen.insert(r.app_id.clone()) {
                        good.push(r);
                    } else {
                        problems.push(Problem {
                            index,
                            app_id: Some(r.app_id),
                            field: "appId".to_owned(),
                            message: "the same appId appears earlier in the directory".to_owned(),
                        });
                    }
                }
                Err((field, message)) => problems.push(Problem {
                    index,
                    app_id: raw.get("appId").and_then(Value::as_str).map(|s| s.chars().take(MAX_NAME).collect()),
                    field,
                    message,
                }),
            }
        }
        Ok((good, problems))
    }
}

type FieldError = (String, String);

fn err<T>(field: &str, message: impl Into<String>) -> Result<T, FieldError> {
    Err((field.to_owned(), message.into()))
}

/// A name: non-empty, at most [`MAX_NAME`] characters, no control characters.
fn name(v: Option<&Value>, field: &str) -> Result<String, FieldError> {
    match v {
        None | Some(Value::Null) => err(field, "is missing"),
        Some(Value::String(s)) => {
            if s.trim().is_empty() {
                err(field, "is empty")
            } else if s.chars().count() > MAX_NAME {
                err(field, format!("is longer than {MAX_NAME} characters"))
            } else if s.chars().any(char::is_control) {
                err(field, "holds control characters")
            } else {
                Ok(s.clone())
            }
        }
        Some(_) => err(field, "is not a string"),
    }
}

fn optional_text(v: Option<&Value>, field: &str, max: usize) -> Result<Option<String>, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => err(field, format!("is longer than {max} characters")),
        Some(_) => err(field, "is not a string"),
    }
}

/// `[{"src": URL}, ...]` → the URLs.
fn images(v: Option<&Value>, field: &str) -> Result<Vec<String>, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let f = format!("{field}[{i}].src");
                optional_text(item.get("src"), &f, MAX_TEXT)?.ok_or((f, "is missing".to_owned()))
            })
            .collect(),
        Some(_) => err(field, "is not a list"),
    }
}

fn web_url(v: Option<&Value>, field: &str) -> Result<String, FieldError> {
    let Some(url) = optional_text(v, field, MAX_TEXT)? else { return err(field, "is missing") };
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || url.len() <= "https://".len() {
        return err(field, "is not an http or https URL");
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return err(field, "holds spaces or control characters");
    }
    Ok(url)
}

fn record(raw: &Value) -> Result<AppRecord, FieldError> {
    if !raw.is_object() {
        return err("(record)", "is not an object");
    }
    let app_id = name(raw.get("appId"), "appId")?;
    if app_id.chars().any(char::is_whitespace) {
        return err("appId", "holds spaces");
    }
    let title = match raw.get("title") {
        None | Some(Value::Null) => name(raw.get("name"), "title")?,
        t => name(t, "title")?,
    };
    let kind = name(raw.get("type"), "type")?;
    if !["web", "native", "citrix", "onlineNative", "other"].contains(&kind.as_str()) {
        return err("type", format!("{kind:?} is not web, native, citrix, onlineNative or other"));
    }
    let details = raw.get("details");
    if details.is_some_and(|d| !d.is_object() && !d.is_null()) {
        return err("details", "is not an object");
    }
    let url = if kind == "web" { Some(web_url(details.and_then(|d| d.get("url")), "details.url")?) } else { None };
    let mut intents = Vec::new();
    let listens = raw.get("interop").and_then(|i| i.get("intents")).and_then(|i| i.get("listensFor"));
    if let Some(interop) = raw.get("interop")
        && !interop.is_object()
        && !interop.is_null()
    {
        return err("interop", "is not an object");
    }
    match listens {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (intent, decl) in map {
                let base = format!("interop.intents.listensFor.{intent}");
                name(Some(&Value::String(intent.clone())), &base)?;
                if !decl.is_object() {
                    return err(&base, "is not an object");
                }
                let contexts = match decl.get("contexts") {
                    Some(Value::Array(list)) => list
                        .iter()
                        .map(|c| name(Some(c), &format!("{base}.contexts")))
                        .collect::<Result<Vec<_>, _>>()?,
                    None | Some(Value::Null) => return err(&format!("{base}.contexts"), "is missing"),
                    Some(_) => return err(&format!("{base}.contexts"), "is not a list"),
                };
                let result_type = match decl.get("resultType") {
                    None | Some(Value::Null) => None,
                    r => Some(name(r, &format!("{base}.resultType"))?),
                };
                intents.push(IntentDecl {
                    name: intent.clone(),
                    display_name: optional_text(decl.get("displayName"), &format!("{base}.displayName"), MAX_NAME)?,
                    contexts,
                    result_type,
                });
            }
        }
        Some(_) => return err("interop.intents.listensFor", "is not an object"),
    }
    Ok(AppRecord {
        app_id,
        name: optional_text(raw.get("name"), "name", MAX_NAME)?,
        title,
        description: optional_text(raw.get("description"), "description", MAX_TEXT)?,
        tooltip: optional_text(raw.get("tooltip"), "tooltip", MAX_TEXT)?,
        version: optional_text(raw.get("version"), "version", MAX_NAME)?,
        publisher: optional_text(raw.get("publisher"), "publisher", MAX_NAME)?,
        icons: images(raw.get("icons"), "icons")?,
        screenshots: images(raw.get("screenshots"), "screenshots")?,
        kind,
        url,
        intents,
    })
}
