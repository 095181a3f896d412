//! A rendering under way on a thread of its own, so that the reads of live
//! state, which need the desired objects only to prove listed objects
//! unchanged, can start before it is done.

use std::sync::Arc;

use tokio::sync::watch;

use super::Rendered;
use crate::model::Fleet;

/// A rendering that may still be under way: its result once done, or
/// "not yet".
pub struct Rendering {
    done: watch::Receiver<Option<Arc<Rendered>>>,
}

impl Rendering {
    /// Renders and stamps `fleet` on the runtime's blocking pool.
    pub fn start(fleet: Arc<Fleet>) -> Rendering {
        let (sender, done) = watch::channel(None);
        tokio::task::spawn_blocking(move || {
            let rendered = super::render(&fleet).stamped();
            sender.send_replace(Some(Arc::new(rendered)));
        });
        Rendering { done }
    }

    /// A rendering already done.
    pub fn ready(rendered: Arc<Rendered>) -> Rendering {
        let (_, done) = watch::channel(Some(rendered));
        Rendering { done }
    }

    /// The rendering, if it is done.
    pub fn now(&self) -> Option<Arc<Rendered>> {
        self.done.borrow().clone()
    }

    /// The rendering, once it is done. An error only when rendering
    /// panicked (a bug; the panic was printed).
    pub async fn done(&self) -> anyhow::Result<Arc<Rendered>> {
        let mut done = self.done.clone();
        match done.wait_for(Option::is_some).await {
            Ok(rendered) => Ok(Arc::clone(rendered.as_ref().expect("waited for"))),
            Err(_) => anyhow::bail!("rendering the fleet failed (a bug in fleet: see above)"),
        }
    }
}
