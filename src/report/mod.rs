//! report: turns what the pipeline produced into text for people and
//! programs. Writes to any `impl Write`; decides nothing.

use std::io::Write;

use crate::render::Rendered;

/// Multi-document YAML: every Kubernetes object (ready for `kubectl apply -f`),
/// then each JetStream stream and consumer, introduced by a comment.
pub fn rendered_yaml(rendered: &Rendered, out: &mut dyn Write) -> anyhow::Result<()> {
    for object in &rendered.kubernetes {
        writeln!(out, "---")?;
        write!(out, "{}", serde_saphyr::to_string(&object.body)?)?;
    }
    for stream in &rendered.jetstream.streams {
        writeln!(
            out,
            "---\n# JetStream stream {} (not a Kubernetes object)",
            stream.name
        )?;
        write!(out, "{}", serde_saphyr::to_string(&stream.config)?)?;
    }
    for consumer in &rendered.jetstream.consumers {
        writeln!(
            out,
            "---\n# JetStream consumer {} on stream {} (not a Kubernetes object)",
            consumer.name, consumer.stream
        )?;
        write!(out, "{}", serde_saphyr::to_string(&consumer.config)?)?;
    }
    Ok(())
}

/// The rendering as one JSON document: `{"kubernetes": [...], "jetstream": {...}}`.
pub fn rendered_json(rendered: &Rendered, out: &mut dyn Write) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, rendered)?;
    writeln!(out)?;
    Ok(())
}
