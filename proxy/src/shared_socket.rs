//! One listening socket served by several single-threaded proxy services.
//!
//! Pingora's fd table hands every service listening on an address the same
//! file descriptor, and each service's listener owns it: the second to stop
//! would close a descriptor already closed (or, by then, reused by another
//! socket of the process). So only the first service gets the shared table;
//! each other one gets a table of its own holding a duplicate of that
//! descriptor — the same socket, closed by its own listener. A reload still
//! hands over the one socket of the shared table.

use std::os::fd::{BorrowedFd, IntoRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{Fds, ListenFds, ShutdownWatch};
use pingora::services::Service;

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
        let fds = match fds {
            Some(shared) if !self.first => Some(own_table(&shared, &self.address).await),
            fds => fds,
        };
        self.inner
            .start_service(fds, shutdown, listeners_per_fd)
            .await
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
