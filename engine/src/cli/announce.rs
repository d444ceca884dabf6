//! Whether this box asks its BGP speaker to announce the VIPs
//! (`--announce-table`): floodgate keeps a flag route per VIP in a kernel
//! table of its own ([`crate::link::vip_route`]) exactly while the box
//! should take new flows, and BIRD announces what is in that table
//! (deploy/bird/floodgate-box.conf). The routers then spread the VIP's
//! flows over the boxes that announce it (ECMP); see README "Scaling out".
//!
//! The box announces while all of these hold (checked by the control
//! thread every 100 ms, on the shards' snapshots):
//! - it is serving: every shard has reported, and no signal has started
//!   the drain;
//! - the link is up and no shard is stalled (`floodgate_up`);
//! - with the proxy, every shard has a backend that takes new clients (up,
//!   weight above 0): a box whose clients would all be reset takes none.
//!
//! On SIGTERM the routes go first, then floodgate keeps accepting for
//! `--announce-wait` (the time the routers take to move new flows to the
//! other boxes), then drains as without BGP. At every exit the control
//! thread removes the routes; after a crash or SIGKILL the systemd unit's
//! `ExecStopPost` does, and the next start clears any left behind.

use std::fmt;
use std::io;
use std::net::IpAddr;

/// The box as the control thread sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Every shard has sent a snapshot.
    pub reporting: bool,
    /// A signal started the drain (or the stop).
    pub draining: bool,
    pub link_up: bool,
    pub stalled: bool,
    /// The proxy's backends taking new clients, counted on the shard that
    /// has the fewest (`None`: not the proxy).
    pub backends_up: Option<usize>,
}

/// Why the VIPs are not announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withhold {
    Starting,
    Draining,
    LinkDown,
    Stalled,
    NoBackendUp,
    /// The process is ending.
    Exiting,
}

impl fmt::Display for Withhold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Withhold::Starting => "starting",
            Withhold::Draining => "draining",
            Withhold::LinkDown => "the link is down",
            Withhold::Stalled => "a shard is stalled",
            Withhold::NoBackendUp => "no backend takes new clients",
            Withhold::Exiting => "exiting",
        })
    }
}

/// Announce (`Ok`) or not, and why not.
pub fn verdict(h: &Health) -> Result<(), Withhold> {
    if h.draining {
        Err(Withhold::Draining)
    } else if !h.reporting {
        Err(Withhold::Starting)
    } else if !h.link_up {
        Err(Withhold::LinkDown)
    } else if h.stalled {
        Err(Withhold::Stalled)
    } else if h.backends_up == Some(0) {
        Err(Withhold::NoBackendUp)
    } else {
        Ok(())
    }
}

/// Where the flag routes go (the kernel, or a test's record).
pub trait Routes {
    fn add(&mut self, vip: IpAddr) -> io::Result<()>;
    fn delete(&mut self, vip: IpAddr) -> io::Result<()>;
    /// For the log: where the routes are.
    fn place(&self) -> String;
}

impl Routes for crate::link::vip_route::VipRoutes {
    fn add(&mut self, vip: IpAddr) -> io::Result<()> {
        crate::link::vip_route::VipRoutes::add(self, vip)
    }
    fn delete(&mut self, vip: IpAddr) -> io::Result<()> {
        crate::link::vip_route::VipRoutes::delete(self, vip)
    }
    fn place(&self) -> String {
        format!("table {} proto {}", self.table(), crate::link::vip_route::RTPROT_FLOODGATE)
    }
}

/// The flag routes of the VIPs, kept in line with [`verdict`].
pub struct Announcer<R: Routes> {
    routes: R,
    vips: Vec<IpAddr>,
    announced: bool,
    /// Route requests the kernel refused (`floodgate_vip_announce_errors_total`).
    errors: u64,
    /// The last refusal was logged; the next success is too.
    failing: bool,
}

impl<R: Routes> Announcer<R> {
    /// Takes over the table: routes of these VIPs left by a run that did
    /// not exit cleanly are removed, so nothing is announced before the
    /// box is ready.
    pub fn new(mut routes: R, vips: Vec<IpAddr>) -> Announcer<R> {
        let mut errors = 0;
        for &v in &vips {
            if let Err(e) = routes.delete(v) {
                errors += 1;
                tracing::error!(vip = %v, "cannot clear the VIP route in {}: {e}", routes.place());
            }
        }
        tracing::info!(
            "BGP: the VIP routes go to {} while this box is up, healthy and not draining (none yet)",
            routes.place()
        );
        Announcer { routes, vips, announced: false, errors, failing: false }
    }

    pub fn announced(&self) -> bool {
        self.announced
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Brings the routes in line with the box's health; logs each change.
    pub fn update(&mut self, h: &Health) {
        match verdict(h) {
            Ok(()) if !self.announced && self.apply(true) => {
                let detail = match h.backends_up {
                    Some(n) => format!(" ({n} backend{} up)", if n == 1 { "" } else { "s" }),
                    None => String::new(),
                };
                tracing::info!(
                    "VIP announced: route{} {} in {}; BGP advertises {}{detail}",
                    if self.vips.len() == 1 { "" } else { "s" },
                    self.list(),
                    self.routes.place(),
                    if self.vips.len() == 1 { "it" } else { "them" }
                );
            }
            Err(w) if self.announced || self.failing => self.withdraw(w),
            _ => {}
        }
    }

    /// Removes the routes now (a signal, an exit): BGP withdraws the VIPs.
    pub fn withdraw(&mut self, why: Withhold) {
        // After a refusal some routes may be in place (several VIPs).
        if !self.announced && !self.failing {
            return;
        }
        if self.apply(false) {
            tracing::info!("VIP withdrawn ({why}): route {} removed from {}", self.list(), self.routes.place());
        }
    }

    fn list(&self) -> String {
        self.vips.iter().map(|v| format!("{v}/{}", if v.is_ipv4() { 32 } else { 128 })).collect::<Vec<_>>().join(",")
    }

    /// Adds or removes every route; true when all went through. A failure
    /// is counted every time and logged once until the next success; the
    /// next update retries.
    fn apply(&mut self, add: bool) -> bool {
        let mut ok = true;
        for &v in &self.vips {
            let r = if add { self.routes.add(v) } else { self.routes.delete(v) };
            if let Err(e) = r {
                ok = false;
                self.errors += 1;
                if !self.failing {
                    tracing::error!(
                        vip = %v,
                        "cannot {} the VIP route in {}: {e} (retried every 100 ms)",
                        if add { "add" } else { "remove" },
                        self.routes.place()
                    );
                }
            }
        }
        if ok && self.failing {
            tracing::info!("the VIP routes in {} are in line again", self.routes.place());
        }
        self.failing = !ok;
        if ok {
            self.announced = add;
        }
        ok
    }
}

impl<R: Routes> Drop for Announcer<R> {
    fn drop(&mut self) {
        self.withdraw(Withhold::Exiting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::rc::Rc;

    /// The table as a set, a switch that makes the kernel refuse, and one
    /// that makes it refuse to add one VIP only.
    #[derive(Clone, Default)]
    struct Table {
        routes: Rc<RefCell<BTreeSet<IpAddr>>>,
        refuse: Rc<RefCell<bool>>,
        refuse_to_add: Rc<RefCell<Option<IpAddr>>>,
    }

    impl Routes for Table {
        fn add(&mut self, vip: IpAddr) -> io::Result<()> {
            if *self.refuse.borrow() || *self.refuse_to_add.borrow() == Some(vip) {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            self.routes.borrow_mut().insert(vip);
            Ok(())
        }
        fn delete(&mut self, vip: IpAddr) -> io::Result<()> {
            if *self.refuse.borrow() {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            self.routes.borrow_mut().remove(&vip);
            Ok(())
        }
        fn place(&self) -> String {
            "the test's table".into()
        }
    }

    const SERVING: Health =
        Health { reporting: true, draining: false, link_up: true, stalled: false, backends_up: Some(2) };
    const VIP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 5, 1));

    #[test]
    fn announced_only_while_up_healthy_and_not_draining() {
        assert_eq!(verdict(&SERVING), Ok(()));
        assert_eq!(verdict(&Health { backends_up: None, ..SERVING }), Ok(()), "not the proxy: no backends");
        assert_eq!(verdict(&Health { reporting: false, ..SERVING }), Err(Withhold::Starting));
        assert_eq!(verdict(&Health { draining: true, ..SERVING }), Err(Withhold::Draining));
        assert_eq!(verdict(&Health { link_up: false, ..SERVING }), Err(Withhold::LinkDown));
        assert_eq!(verdict(&Health { stalled: true, ..SERVING }), Err(Withhold::Stalled));
        assert_eq!(verdict(&Health { backends_up: Some(0), ..SERVING }), Err(Withhold::NoBackendUp));
        // Draining wins over everything: the log says why it went.
        let all_bad = Health { reporting: false, draining: true, link_up: false, stalled: true, backends_up: Some(0) };
        assert_eq!(verdict(&all_bad), Err(Withhold::Draining));
    }

    #[test]
    fn the_route_follows_the_health_and_goes_at_the_drain() {
        let t = Table::default();
        t.routes.borrow_mut().insert(VIP); // left by a crashed run
        let mut a = Announcer::new(t.clone(), vec![VIP]);
        assert!(t.routes.borrow().is_empty(), "a stale route is cleared at start");
        a.update(&Health { reporting: false, ..SERVING });
        assert!(!a.announced() && t.routes.borrow().is_empty(), "not before every shard reports");
        a.update(&SERVING);
        assert!(a.announced() && t.routes.borrow().contains(&VIP));
        a.update(&Health { backends_up: Some(0), ..SERVING });
        assert!(!a.announced() && t.routes.borrow().is_empty(), "every backend down: withdrawn");
        a.update(&SERVING);
        assert!(a.announced(), "a backend back: announced again");
        a.withdraw(Withhold::Draining);
        assert!(t.routes.borrow().is_empty());
        a.update(&Health { draining: true, ..SERVING });
        assert!(!a.announced(), "stays withdrawn while draining");
        assert_eq!(a.errors(), 0);
    }

    #[test]
    fn refusals_are_counted_and_retried_and_the_exit_withdraws() {
        let t = Table::default();
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        let mut a = Announcer::new(t.clone(), vec![VIP, v6]);
        *t.refuse.borrow_mut() = true;
        a.update(&SERVING);
        a.update(&SERVING);
        assert!(!a.announced());
        assert_eq!(a.errors(), 4, "two VIPs, two tries");
        *t.refuse.borrow_mut() = false;
        a.update(&SERVING);
        assert!(a.announced());
        assert_eq!(*t.routes.borrow(), BTreeSet::from([VIP, v6]));
        drop(a);
        assert!(t.routes.borrow().is_empty(), "dropped (every exit path): withdrawn");
    }

    #[test]
    fn a_half_done_announcement_is_undone() {
        let t = Table::default();
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        *t.refuse_to_add.borrow_mut() = Some(v6);
        let mut a = Announcer::new(t.clone(), vec![VIP, v6]);
        a.update(&SERVING);
        assert!(!a.announced());
        assert_eq!(*t.routes.borrow(), BTreeSet::from([VIP]), "the first VIP's route went in");
        a.update(&Health { backends_up: Some(0), ..SERVING });
        assert!(t.routes.borrow().is_empty(), "unhealthy: the half announcement is taken back");
        a.update(&SERVING);
        assert_eq!(*t.routes.borrow(), BTreeSet::from([VIP]));
        drop(a);
        assert!(t.routes.borrow().is_empty(), "and at the exit");
    }
}
