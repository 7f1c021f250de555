//! `{name}` placeholders in the text of templates and sets, and their `{{`/`}}` escapes.
//!
//! One pass over the text: each placeholder's value is inserted as is, never scanned again, so
//! a value that holds braces (an ffmpeg filter graph in `args`) stays what it was. The feed
//! placeholders of multi-feed streams (`{feed:NAME}`, `{feed-path:NAME}`) are left for the
//! stream to resolve when it runs, with any placeholder in their NAME substituted
//! (`{feed:{id}_mic}` in a set). This module knows no names: the caller's lookup does.

/// What is wrong with a text's placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlaceholderError {
    /// `{name}` that the lookup does not know.
    Unknown(String),
    /// A `{` that no `}` closes.
    Unclosed,
    /// A `}` that no `{` opened.
    Stray,
}

impl std::fmt::Display for PlaceholderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaceholderError::Unknown(name) => write!(f, "unknown placeholder {{{name}}}"),
            PlaceholderError::Unclosed => {
                f.write_str("a '{' that no '}' closes (write {{ for a literal brace)")
            }
            PlaceholderError::Stray => {
                f.write_str("a '}' that no '{' opened (write }} for a literal brace)")
            }
        }
    }
}

/// The prefixes of the placeholders a multi-feed stream resolves when it runs.
pub(crate) const FEED_PREFIXES: [&str; 2] = ["feed:", "feed-path:"];

/// `text` with every `{name}` replaced by `lookup(name)` and `{{`, `}}` unescaped.
pub(crate) fn substitute(
    text: &str,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<String, PlaceholderError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let brace = &rest[at..];
        if let Some(after) = brace.strip_prefix("{{").or(brace.strip_prefix("}}")) {
            out.push_str(&brace[..1]);
            rest = after;
            continue;
        }
        if brace.starts_with('}') {
            return Err(PlaceholderError::Stray);
        }
        let inner = &brace[1..];
        if let Some(prefix) = FEED_PREFIXES.iter().find(|p| inner.starts_with(**p)) {
            let (name, after) = feed_name(&inner[prefix.len()..])?;
            out.push('{');
            out.push_str(prefix);
            out.push_str(&substitute(name, lookup)?);
            out.push('}');
            rest = after;
            continue;
        }
        let end = inner.find(['{', '}']).ok_or(PlaceholderError::Unclosed)?;
        if !inner[end..].starts_with('}') {
            return Err(PlaceholderError::Unclosed);
        }
        let name = &inner[..end];
        out.push_str(&lookup(name).ok_or_else(|| PlaceholderError::Unknown(name.to_owned()))?);
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The NAME of a feed placeholder (which may hold placeholders itself) and the text after its
/// closing brace.
fn feed_name(text: &str) -> Result<(&str, &str), PlaceholderError> {
    let mut depth = 0usize;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Ok((&text[..at], &text[at + 1..])),
            '}' => depth -= 1,
            _ => {}
        }
    }
    Err(PlaceholderError::Unclosed)
}

/// The names of the placeholders in `text` (feed placeholders' inner ones included), in order.
pub(crate) fn names(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    // Errors are reported by `substitute`; the names before one are still worth knowing.
    let _ = substitute(text, &mut |name| {
        found.push(name.to_owned());
        Some(String::new())
    });
    found
}

/// The feed names that the feed placeholders of a final command name, in order.
pub(crate) fn feed_refs(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some((prefix, at)) = next_feed_ref(rest) {
        let after = &rest[at + prefix.len() + 1..];
        let Some(end) = after.find('}') else { break };
        found.push(&after[..end]);
        rest = &after[end + 1..];
    }
    found
}

/// `word` with each feed placeholder replaced by the descriptor `fd_of` gives its feed:
/// `{feed:NAME}` by `pipe:N` (ffmpeg's protocol), `{feed-path:NAME}` by `/dev/fd/N`. A name
/// without a descriptor is left as written.
pub(crate) fn fill_feed_refs(word: &str, fd_of: &dyn Fn(&str) -> Option<i32>) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some((prefix, at)) = next_feed_ref(rest) {
        let after = &rest[at + prefix.len() + 1..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..at]);
        match fd_of(&after[..end]) {
            Some(fd) if prefix == FEED_PREFIXES[0] => out.push_str(&format!("pipe:{fd}")),
            Some(fd) => out.push_str(&format!("/dev/fd/{fd}")),
            None => out.push_str(&rest[at..at + prefix.len() + end + 2]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The first feed placeholder of `text`: its prefix and the offset of its `{`.
fn next_feed_ref(text: &str) -> Option<(&'static str, usize)> {
    FEED_PREFIXES
        .iter()
        .filter_map(|prefix| text.find(&format!("{{{prefix}")).map(|at| (*prefix, at)))
        .min_by_key(|(_, at)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(text: &str) -> Result<String, PlaceholderError> {
        substitute(text, &mut |name| match name {
            "id" => Some("cam0".to_owned()),
            "args" => Some("-vf {x}".to_owned()),
            "empty" => Some(String::new()),
            _ => None,
        })
    }

    #[test]
    fn placeholders_are_replaced_once_and_their_values_are_not_scanned() {
        assert_eq!(fill("/{id}.ts").as_deref(), Ok("/cam0.ts"));
        assert_eq!(fill("a {args} b").as_deref(), Ok("a -vf {x} b"));
        assert_eq!(fill("{id}{empty}{id}").as_deref(), Ok("cam0cam0"));
        assert_eq!(fill("no braces").as_deref(), Ok("no braces"));
        assert_eq!(fill("").as_deref(), Ok(""));
    }

    #[test]
    fn doubled_braces_are_literal_braces() {
        assert_eq!(fill("{{id}}").as_deref(), Ok("{id}"));
        assert_eq!(fill("a{{b").as_deref(), Ok("a{b"));
        assert_eq!(fill("}}{{").as_deref(), Ok("}{"));
        assert_eq!(fill("{{{id}}}").as_deref(), Ok("{cam0}"));
    }

    #[test]
    fn wrong_braces_and_unknown_names_are_errors() {
        assert_eq!(
            fill("{nope}"),
            Err(PlaceholderError::Unknown("nope".into()))
        );
        assert_eq!(fill("{}"), Err(PlaceholderError::Unknown(String::new())));
        assert_eq!(fill("a {id"), Err(PlaceholderError::Unclosed));
        assert_eq!(fill("a {i{d}"), Err(PlaceholderError::Unclosed));
        assert_eq!(fill("a } b"), Err(PlaceholderError::Stray));
        assert_eq!(
            PlaceholderError::Unknown("x".into()).to_string(),
            "unknown placeholder {x}"
        );
    }

    #[test]
    fn feed_placeholders_stay_with_their_names_filled_in() {
        assert_eq!(
            fill("-i {feed:{id}_mic} -i {feed-path:v}").as_deref(),
            Ok("-i {feed:cam0_mic} -i {feed-path:v}")
        );
        assert_eq!(
            fill("{feed:{nope}}"),
            Err(PlaceholderError::Unknown("nope".into()))
        );
        assert_eq!(fill("{feed:a"), Err(PlaceholderError::Unclosed));
    }

    #[test]
    fn feed_placeholders_of_a_final_command_become_descriptors() {
        let command = "ffmpeg -i {feed:v} -i {feed-path:mic} -map 0 {feed:other}";
        assert_eq!(feed_refs(command), ["v", "mic", "other"]);
        let fd_of = |name: &str| match name {
            "v" => Some(3),
            "mic" => Some(4),
            _ => None,
        };
        assert_eq!(
            fill_feed_refs(command, &fd_of),
            "ffmpeg -i pipe:3 -i /dev/fd/4 -map 0 {feed:other}"
        );
        assert_eq!(
            fill_feed_refs("amovie={feed-path:mic}", &fd_of),
            "amovie=/dev/fd/4"
        );
        assert_eq!(fill_feed_refs("{feed:v", &fd_of), "{feed:v");
        assert!(feed_refs("{feed:v").is_empty() && feed_refs("no {x}").is_empty());
    }

    #[test]
    fn names_lists_every_placeholder_in_order() {
        assert_eq!(
            names("{a} {{b}} {feed:{c}_x} {a}"),
            ["a", "c", "a"].map(String::from)
        );
        assert_eq!(names("{a} } {b}"), ["a"].map(String::from));
    }
}
