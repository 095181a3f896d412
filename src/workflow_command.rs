//! workflow_command: the lines a GitHub Actions runner reads as commands
//! (`::error file=f,line=3::message`, `::add-mask::`, `::group::`), escaped
//! as the runner unescapes them. Pure: what to write, and when, is
//! `report::github`'s (a plan's annotations, masks, groups) and `load`'s
//! (a definition's diagnostics).

use std::fmt;

/// One workflow command, a line of its own:
/// `::name key=value,key=value::message`, escaped as the runner unescapes
/// it (`%`, CR and LF everywhere; also `:` and `,` in values), after
/// <https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts>.
pub(crate) fn command(
    name: &str,
    properties: &[(&str, &dyn fmt::Display)],
    message: &str,
) -> String {
    let properties = properties
        .iter()
        .map(|(key, value)| format!("{key}={}", escape_property(&value.to_string())))
        .collect::<Vec<_>>()
        .join(",");
    let space = if properties.is_empty() { "" } else { " " };
    format!("::{name}{space}{properties}::{}\n", escape_data(message))
}

/// A workflow command's message: `%`, CR and LF escaped.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property: also `:` and `,`.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_commands_escape_their_message_and_properties() {
        assert_eq!(
            command(
                "error",
                &[("file", &"a:b,c.toml"), ("line", &3)],
                "100%\r\nsure: yes, really"
            ),
            "::error file=a%3Ab%2Cc.toml,line=3::100%25%0D%0Asure: yes, really\n"
        );
        assert_eq!(command("group", &[], "x"), "::group::x\n");
    }
}
