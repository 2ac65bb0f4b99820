//! Table cells of the Markdown reports: whatever a file holds (a column name, a value, a path)
//! goes through here, so that a `|`, a backtick or a line break in it cannot break the table.

/// Plain text in a cell: pipes escaped, line breaks as spaces.
pub fn text(s: &str) -> String {
    s.replace('|', "\\|").replace("\r\n", " ").replace(['\n', '\r'], " ")
}

/// Code in a cell, in backticks: pipes escaped, backticks (which would end the code span) as
/// quotes, line breaks as spaces.
pub fn code(s: &str) -> String {
    format!("`{}`", text(s).replace('`', "'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_a_table() {
        assert_eq!(text("a|b\nc"), "a\\|b c");
        assert_eq!(code("x`|y"), "`x'\\|y`");
        assert_eq!(code("plain"), "`plain`");
    }
}
