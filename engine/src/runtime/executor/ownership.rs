//! Which partitions this process holds: joining the members, claiming an equal share (taking
//! over from processes that are gone), renewing, handing surplus back when others join, and
//! dropping all state of a partition the moment it is lost — after which the fence refuses any
//! write for it anyway.

use std::collections::BTreeSet;

use super::Executor;
use crate::runtime::{EngineError, Ownership, channel};
use crate::store::{CRON_PARTITION, Claim, Lease};

impl Executor {
    /// Joins the members and takes this process's first partitions, with their runs (at
    /// start).
    pub(super) async fn join(&mut self) -> Result<(), EngineError> {
        let now = self.clock.now_ms();
        let owner = self.config.owner.clone();
        self.store.heartbeat(&owner, self.config.role, now).await?;
        let lease = self.lease_ms();
        let gained = match self.config.ownership {
            Ownership::Nothing => Vec::new(),
            Ownership::Private => {
                let mine = self.store.new_private_partition(&owner, now, lease).await?;
                self.private = Some(mine.partition);
                vec![mine]
            }
            Ownership::Shared => {
                // What an earlier life under this name held comes back at once; then free and
                // abandoned partitions up to an equal share.
                let mut got = self
                    .store
                    .claim_partitions(&owner, now, lease, self.shared, Claim::Own)
                    .await?;
                let want = self.fair_share(now).await?.saturating_sub(count(&got));
                got.extend(
                    self.store
                        .claim_partitions(&owner, now, lease, want, Claim::Free)
                        .await?,
                );
                got.extend(
                    self.store
                        .adopt_private_partitions(&owner, now, lease)
                        .await?,
                );
                got
            }
        };
        self.gain(gained).await?;
        self.announce_membership();
        Ok(())
    }

    /// Tells the other processes that the members changed, so they rebalance now rather than
    /// at their next renewal.
    pub(super) fn announce_membership(&self) {
        let wakeup = (channel::MEMBERS, self.config.owner.clone());
        crate::runtime::cluster::wake_others(&self.store, vec![wakeup]);
    }

    /// An equal share of the shared partitions among the live executors (this one counted).
    async fn fair_share(&self, now: i64) -> Result<u32, EngineError> {
        let live = self
            .store
            .live_executors(now - self.lease_ms())
            .await?
            .max(1);
        Ok(self.shared.div_ceil(live))
    }

    /// Every third of a lease: says this process is alive, renews its leases (dropping what it
    /// lost), and — as a service — claims up to its share, hands back what is over it, and
    /// adopts the runs of `csmp run` processes that are gone. The renewal is a write, so it
    /// also tells whether the database takes writes again after a fault.
    pub(super) async fn tend(&mut self) {
        let now = self.clock.now_ms();
        let owner = self.config.owner.clone();
        let lease = self.lease_ms();
        if let Err(e) = self.store.heartbeat(&owner, self.config.role, now).await {
            if e.is_transient() {
                self.health.storage_down(&e.to_string(), now);
                return;
            }
            tracing::warn!("cannot say this process is alive: {e}");
        }
        let held: Vec<Lease> = self.leases();
        match self
            .store
            .renew_partitions(&owner, &held, now.saturating_add(lease))
            .await
        {
            Ok(still) => {
                self.health.storage_up(now);
                for l in held.iter().filter(|l| !still.contains(l)) {
                    self.lose_partition(
                        l.partition,
                        "another process took it over (this one was not heard from for a lease)",
                    );
                }
            }
            Err(e) if e.is_transient() => {
                self.health.storage_down(&e.to_string(), now);
                return;
            }
            Err(e) => tracing::warn!("cannot renew partition leases: {e}"),
        }
        self.refill_signal_ids().await;
        if let Err(e) = self.reload_incidents().await {
            tracing::warn!("cannot read the open incidents again: {e}");
        }
        if self.config.ownership != Ownership::Shared {
            return;
        }
        let share = match self.fair_share(now).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot count the live processes: {e}");
                return;
            }
        };
        let mine: Vec<i64> = self
            .held
            .keys()
            .copied()
            .filter(|p| *p < i64::from(self.shared))
            .collect();
        let have = u32::try_from(mine.len()).unwrap_or(u32::MAX);
        let mut gained = Vec::new();
        if have < share {
            match self
                .store
                .claim_partitions(&owner, now, lease, share - have, Claim::Free)
                .await
            {
                Ok(got) => gained.extend(got),
                Err(e) => tracing::warn!("cannot claim partitions: {e}"),
            }
        } else if have > share {
            // The highest ids go back; the cron partition (0) stays with whoever has it.
            let surplus: Vec<i64> = mine
                .iter()
                .rev()
                .take((have - share) as usize)
                .copied()
                .collect();
            self.hand_back(&surplus).await;
        }
        match self
            .store
            .adopt_private_partitions(&owner, now, lease)
            .await
        {
            Ok(got) => gained.extend(got),
            Err(e) => tracing::warn!("cannot adopt the runs of stopped `csmp run` processes: {e}"),
        }
        if let Err(e) = self.gain(gained).await {
            tracing::warn!("cannot load the runs of partitions just claimed: {e}");
        }
        self.release_idle_private().await;
        if let Err(e) = self.store.forget_members(now - FORGET_MEMBERS_MS).await {
            tracing::debug!("cannot forget members long gone: {e}");
        }
        if let Err(e) = self
            .store
            .inbox_sweep(now - crate::runtime::mailbox::FORGOTTEN.as_millis() as i64)
            .await
        {
            tracing::debug!("cannot sweep answered commands: {e}");
        }
    }

    /// The leases held, lowest partition first.
    pub(super) fn leases(&self) -> Vec<Lease> {
        self.held
            .iter()
            .map(|(p, e)| Lease {
                partition: *p,
                epoch: *e,
            })
            .collect()
    }

    /// Makes newly held partitions' unfinished runs active here. What cannot be loaded is given
    /// back, so another process (or this one, later) may take it.
    pub(super) async fn gain(&mut self, leases: Vec<Lease>) -> Result<(), EngineError> {
        if leases.is_empty() {
            return Ok(());
        }
        for l in &leases {
            self.held.insert(l.partition, l.epoch);
        }
        self.publish_held();
        let partitions: Vec<i64> = leases.iter().map(|l| l.partition).collect();
        tracing::info!(partitions = ?partitions, "partitions taken");
        let loaded = async {
            let rows = self.store.unfinished_runs_in(&partitions).await?;
            let fresh: Vec<_> = rows
                .into_iter()
                .filter(|r| !self.runs.contains_key(&r.id) && !self.blocked.contains_key(&r.id))
                .collect();
            self.take_runs(fresh).await
        }
        .await;
        if let Err(e) = loaded {
            for p in &partitions {
                self.lose_partition(*p, "its runs could not be loaded");
            }
            let owner = self.config.owner.clone();
            if let Err(r) = self.store.release_partitions(&owner, &leases).await {
                tracing::warn!("cannot give back partitions whose runs did not load: {r}");
            }
            return Err(e);
        }
        if partitions.contains(&CRON_PARTITION) {
            self.arm_crons().await;
        }
        self.inbox_due = true;
        Ok(())
    }

    /// Gives partitions back (a rebalance): their runs are dropped here first, so nothing more
    /// is written for them, then the leases are released for another process to claim.
    async fn hand_back(&mut self, partitions: &[i64]) {
        let leases: Vec<Lease> = self
            .leases()
            .into_iter()
            .filter(|l| partitions.contains(&l.partition))
            .collect();
        tracing::info!(partitions = ?partitions, "partitions handed back to balance the work among the processes");
        for p in partitions {
            self.drop_partition(*p);
        }
        let owner = self.config.owner.clone();
        if let Err(e) = self.store.release_partitions(&owner, &leases).await {
            tracing::warn!(
                "cannot give back partitions {partitions:?} ({e}); another process takes them when their lease runs out"
            );
        }
    }

    /// Gives back the private partitions of stopped `csmp run` processes once their runs are
    /// over and no command waits for them.
    async fn release_idle_private(&mut self) {
        let private: Vec<Lease> = self
            .leases()
            .into_iter()
            .filter(|l| l.partition >= i64::from(self.shared) && Some(l.partition) != self.private)
            .filter(|l| {
                !self.runs.values().any(|r| r.row.partition == l.partition)
                    && !self.blocked.values().any(|r| r.partition == l.partition)
            })
            .collect();
        if private.is_empty() {
            return;
        }
        let owner = self.config.owner.clone();
        match self.store.release_idle_private(&owner, &private).await {
            Ok(released) => {
                for p in released {
                    self.held.remove(&p);
                }
                self.publish_held();
            }
            Err(e) => tracing::debug!("cannot give back idle private partitions: {e}"),
        }
    }

    /// A partition lost (another process took it over, or its runs would not load): logged,
    /// then dropped.
    pub(super) fn lose_partition(&mut self, p: i64, why: &str) {
        if !self.held.contains_key(&p) {
            return;
        }
        let runs = self.runs.values().filter(|r| r.row.partition == p).count();
        tracing::warn!(partition = p, runs, "partition let go: {why}");
        self.metrics.partition_lost();
        self.drop_partition(p);
    }

    /// Drops every run, timer, attempt and command of partition `p` without writing anything
    /// more for it: it is lost (or handed back). Callers waiting on its runs are told.
    fn drop_partition(&mut self, p: i64) {
        if self.held.remove(&p).is_none() {
            return;
        }
        self.publish_held();
        let runs: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| r.row.partition == p)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &runs {
            self.lose_run(id);
        }
        self.blocked.retain(|_, r| r.partition != p);
        let gone: BTreeSet<String> = runs.into_iter().collect();
        self.timers.retain(|(_, run, _)| !gone.contains(run));
        self.inbox_taken.retain(|_, partition| *partition != p);
        self.refuse_replies_of(p);
        if p == CRON_PARTITION && !self.crons.is_empty() {
            tracing::info!("cron triggers stop here: another process fires them now");
            self.crons.clear();
        }
    }

    /// Tells the API and the one-at-a-time duties which partitions are held now.
    pub(super) fn publish_held(&self) {
        self.held_now.set(self.held.keys().copied());
        self.metrics.set_partitions(self.held.len());
    }
}

/// Members not heard from for this long (an hour) are forgotten.
const FORGET_MEMBERS_MS: i64 = 3_600_000;

fn count(leases: &[Lease]) -> u32 {
    u32::try_from(leases.len()).unwrap_or(u32::MAX)
}
