//! The admin policy's `processes` section: which web apps share app host processes. IT may put
//! an app in a named process group, or give it a host of its own, whatever its manifest says
//! (`"processes": {"alone": ["risk", "*"], "groups": {"news": "feeds"}}`; `"alone": ["*"]`:
//! no app shares a host).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The admin policy's process rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessRules {
    /// Apps that get a host of their own (`"*"`: every app).
    #[serde(default)]
    pub alone: Vec<String>,
    /// Apps put in a process group, by app id.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
}

/// Where the policy puts an app's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessChoice {
    /// In the named process group.
    Group(String),
    /// In a host of its own.
    Alone,
}

impl ProcessRules {
    /// Where `app` goes, if the policy says (a host of its own wins over a group).
    pub fn of(&self, app: &str) -> Option<ProcessChoice> {
        if self.alone.iter().any(|a| a == "*" || a == app) {
            return Some(ProcessChoice::Alone);
        }
        self.groups.get(app).map(|g| ProcessChoice::Group(g.clone()))
    }

    /// What is wrong with the rules, if anything.
    pub(crate) fn problems(&self, problems: &mut Vec<String>) {
        for (app, group) in &self.groups {
            if !is_group_name(group) {
                problems.push(format!(
                    "processes.groups.{app}: {group:?} is not a group name (1-64 letters, digits, '-', '_' or '.', not starting with '.')"
                ));
            }
        }
    }
}

/// Whether `name` may name a process group: 1 to 64 letters, digits, `-`, `_` or `.`, not
/// starting with `.` (it names a directory in the profile).
pub fn is_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests;
