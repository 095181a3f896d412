//! Problems found in a fleet definition, and how they are shown: rustc-style
//! with the offending source line, and as GitHub annotations in Actions.

use std::fmt::Write as _;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use super::source::{Origin, Sources};
use crate::workflow_command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    /// What is wrong, in one line.
    pub message: String,
    /// Where; `None` only for problems that are not in any file.
    pub origin: Option<Origin>,
    /// Shown under the source span.
    pub label: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(origin: &Origin, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
            origin: Some(origin.clone()),
            label: String::new(),
            help: None,
        }
    }

    pub fn warning(origin: &Origin, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(origin, message)
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Renders diagnostics the way rustc does; `styled` adds colour.
pub fn render(diagnostics: &[Diagnostic], sources: &Sources, styled: bool) -> String {
    let renderer = if styled {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for diagnostic in diagnostics {
        let level = match diagnostic.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let mut group = Group::with_title(level.primary_title(&diagnostic.message));
        if let Some(origin) = &diagnostic.origin {
            let file = sources.file(origin.file);
            let path = file.path.to_string_lossy();
            // An empty span (end of file) still needs one column to point at.
            let span = if origin.span.is_empty() {
                let start = origin.span.start.min(file.text.len());
                start..start
            } else {
                origin.span.clone()
            };
            group = group.element(
                Snippet::source(file.text.as_str())
                    .path(path.to_string())
                    .fold(true)
                    .annotation(
                        AnnotationKind::Primary
                            .span(span)
                            .label(diagnostic.label.as_str()),
                    ),
            );
        }
        if let Some(help) = &diagnostic.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        let _ = writeln!(out, "{}\n", renderer.render(&[group]));
    }
    out
}

/// GitHub Actions workflow commands, one per diagnostic, so each problem shows
/// on the pull request's diff.
pub fn github_annotations(diagnostics: &[Diagnostic], sources: &Sources) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let command = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut message = diagnostic.message.clone();
        if let Some(help) = &diagnostic.help {
            message.push_str(". help: ");
            message.push_str(help);
        }
        out.push_str(&match &diagnostic.origin {
            Some(origin) => {
                let (line, col) = sources.line_col(origin);
                let file = sources.file(origin.file).path.display();
                workflow_command::command(
                    command,
                    &[("file", &file), ("line", &line), ("col", &col)],
                    &message,
                )
            }
            None => workflow_command::command(command, &[], &message),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn renders_location_source_line_and_help() {
        let mut sources = Sources::default();
        let file = sources.add(
            Path::new("fleet.toml"),
            "[agents.devops]\nreplica = 2\n".into(),
        );
        let diagnostic = Diagnostic::error(&Origin { file, span: 16..23 }, "unknown key `replica`")
            .with_label("not a setting of an agent")
            .with_help("did you mean `replicas`?");
        let text = render(std::slice::from_ref(&diagnostic), &sources, false);
        assert!(text.contains("error: unknown key `replica`"), "{text}");
        assert!(text.contains("fleet.toml:2:1"), "{text}");
        assert!(text.contains("replica = 2"), "{text}");
        assert!(text.contains("help: did you mean `replicas`?"), "{text}");
        assert_eq!(
            github_annotations(&[diagnostic], &sources),
            "::error file=fleet.toml,line=2,col=1::unknown key `replica`. help: did you mean `replicas`?\n"
        );
    }
}
