//! Fuzzy matching for the launcher's search: the query's characters must appear in order in
//! the candidate (case-insensitive); matches at word starts and runs of consecutive characters
//! score higher, so "tk" finds "Ticket" before "Stock ticker", and "blot" finds "Blotter" first.

/// How well `query` matches `candidate`; `None` if it does not. Higher is better.
pub fn score(query: &str, candidate: &str) -> Option<i32> {
    let query: Vec<char> = query.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect();
    if query.is_empty() {
        return Some(0);
    }
    let chars: Vec<char> = candidate.chars().collect();
    let lower: Vec<char> = chars.iter().map(|c| c.to_lowercase().next().unwrap_or(*c)).collect();
    let mut total = 0;
    let mut qi = 0;
    let mut previous: Option<usize> = None;
    for (i, c) in lower.iter().enumerate() {
        if qi == query.len() {
            break;
        }
        if *c != query[qi] {
            continue;
        }
        let word_start =
            i == 0 || !chars[i - 1].is_alphanumeric() || (chars[i].is_uppercase() && chars[i - 1].is_lowercase());
        let mut s = 1;
        if word_start {
            s += 6;
        }
        if previous.is_some_and(|p| p + 1 == i) {
            s += 8;
        }
        if i == 0 {
            s += 4;
        }
        // Gaps cost a little, so tighter matches win.
        if let Some(p) = previous {
            s -= i32::try_from((i - p - 1).min(10)).unwrap_or(10);
        }
        total += s;
        previous = Some(i);
        qi += 1;
    }
    (qi == query.len()).then_some(total)
}

#[cfg(test)]
mod tests;
