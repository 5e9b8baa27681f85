//! Quoting input in messages: a bad value is shown, but never more than a line of it.

/// Most characters of a value a message shows.
pub const QUOTE_LIMIT: usize = 80;

/// `s` quoted as a Rust string, cut to [`QUOTE_LIMIT`] characters with an ellipsis and the
/// full length when longer.
pub fn quote(s: &str) -> String {
    let count = s.chars().count();
    if count <= QUOTE_LIMIT {
        return format!("{s:?}");
    }
    let head: String = s.chars().take(QUOTE_LIMIT).collect();
    format!("{head:?}… ({count} characters)")
}

#[cfg(test)]
mod tests;
