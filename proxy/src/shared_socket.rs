//! One listening socket served by several single-threaded proxy services.
//!
//! Pingora's fd table hands every service listening on an address the same
//! file descriptor, and each service's listener owns it: the second to stop
//! would close a descriptor already closed (or, by then, reused by another
//! socket of the process). So only the first service gets the shared table;
//! each other one gets a table of its own holding a duplicate of that
//! descriptor — the same socket, closed by its own listener. A reload still
//! hands over the one socket of the shared table.
//!
//! Each service also counts itself in [`SharedSocket::accepting`] until its
//! accept loop has ended *and* every connection it accepted has started
//! being served (and so is counted as open): the drain must not end the
//! process on a connection the kernel handed over but nobody counted yet.

use std::os::fd::{BorrowedFd, IntoRawFd};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{Fds, ListenFds, ShutdownWatch};
use pingora::services::Service;

use crate::drain::Counted;

/// How long a later service waits for the first to have bound the address.
const BIND_WAIT: Duration = Duration::from_secs(60);

/// A listening service on `address`, the first of its address or not.
pub struct SharedSocket<S> {
    /// The service.
    pub inner: S,
    /// The address it listens on, as given to `add_tcp`.
    pub address: String,
    /// Whether this service binds the address (or takes it over on `-u`).
    pub first: bool,
    /// Services still accepting, or with accepted connections not yet
    /// being served (see the module documentation); read by the drain.
    pub accepting: Arc<AtomicUsize>,
}

/// A table with a duplicate of the shared table's descriptor for `address`,
/// once the first service has put it there.
async fn own_table(shared: &ListenFds, address: &str) -> ListenFds {
    let started = Instant::now();
    loop {
        let fd = shared.lock().get(address).copied();
        if let Some(fd) = fd {
            // Safety: the shared table's descriptor stays open while the
            // first service listens, which outlasts this call.
            let copy = unsafe { BorrowedFd::borrow_raw(fd) }
                .try_clone_to_owned()
                .unwrap_or_else(|e| panic!("cannot duplicate the listening socket {address}: {e}"));
            let mut own = Fds::new();
            own.add(address.to_string(), copy.into_raw_fd());
            return Arc::new(own.into());
        }
        assert!(
            started.elapsed() < BIND_WAIT,
            "{address} was not bound within {BIND_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[async_trait]
impl<S: Service> Service for SharedSocket<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        let _accepting = Counted::start(&self.accepting);
        let fds = match fds {
            Some(shared) if !self.first => Some(own_table(&shared, &self.address).await),
            fds => fds,
        };
        self.inner
            .start_service(fds, shutdown, listeners_per_fd)
            .await;
        // The accept loop has ended, but the connections it accepted last may
        // be spawned tasks not yet run. Tokio runs a task's queue in order
        // (a new task may jump it, a yielding one goes to its back), so a
        // task that yields once finishes after each of them has started (and
        // counted itself open: nothing before that awaits).
        if let Err(e) = tokio::spawn(tokio::task::yield_now()).await {
            tracing::warn!(
                "{}: waiting for the last accepted connections: {e}",
                self.name()
            );
        }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}
