//! The filing word between a connection and its runtime's ticker, every interleaving. The
//! ticker's lists are modelled as one list of filed milliseconds under a lock (`Filed`): the
//! connection files under it, as `Ticker::file` does; the ticker carries outside it, as
//! `Ticker::fire` does. After the race, the filings still in the list are fired one by one
//! in order: the connection's next tick must wake it exactly once (neither lost nor
//! doubled), a stale filing wakes nothing, and an ended connection is carried no further.

use std::time::Duration;

use loom::sync::{Arc, Mutex};
use loom::thread;

use super::{Filing, Fired};

const I: Duration = Duration::from_millis(10);
/// The tick whose filing fires in the race.
const D: u64 = 100;

/// The connection, its filing at `D` in the ticker's list.
fn filed_at_d() -> (Arc<Filing>, Arc<Mutex<Vec<u64>>>) {
    let filing = Arc::new(Filing::default());
    filing.file(D, true);
    (filing, Arc::new(Mutex::new(vec![D])))
}

/// The ticker fires the filing at `ms` (taken from the list) at `now`; a carried one goes
/// back into the list. Whether it woke the connection.
fn fire(filing: &Filing, filed: &Mutex<Vec<u64>>, ms: u64, now: u64) -> bool {
    match filing.carry(ms, now, I) {
        Fired::Stale => false,
        Fired::Once => true,
        Fired::Carried(next) => {
            filed.lock().unwrap().push(next);
            true
        }
    }
}

/// The connection files its deadline at `ms`, under the ticker's lock.
fn file(filing: &Filing, filed: &Mutex<Vec<u64>>, ms: u64) {
    let mut filed = filed.lock().unwrap();
    filing.file(ms, true);
    filed.push(ms);
}

/// Fires what is left at `ms` (each filing once, at its own millisecond): the wake-ups.
fn fire_left_at(filing: &Filing, filed: &Mutex<Vec<u64>>, ms: u64) -> usize {
    let due: Vec<u64> = {
        let mut filed = filed.lock().unwrap();
        let (due, later) = filed.drain(..).partition(|&at| at == ms);
        *filed = later;
        due
    };
    due.into_iter()
        .filter(|&at| fire(filing, filed, at, at))
        .count()
}

#[test]
fn loom_a_tick_on_time_is_woken_once_whether_carried_or_filed() {
    loom::model(|| {
        let (filing, filed) = filed_at_d();
        // The ticker fires the filing at D, while the connection, polled at D for a message,
        // ticks: if the ticker carried its next tick it files nothing, else it files it.
        let ticker = {
            let (filing, filed) = (filing.clone(), filed.clone());
            thread::spawn(move || {
                filed.lock().unwrap().retain(|&at| at != D);
                fire(&filing, &filed, D, D)
            })
        };
        if !filing.take_carried() {
            file(&filing, &filed, D + 10);
        }
        ticker.join().unwrap();
        assert_eq!(
            fire_left_at(&filing, &filed, D + 10),
            1,
            "the next tick wakes once"
        );
        // And the one after it: the chain goes on, once per tick.
        if !filing.take_carried() {
            file(&filing, &filed, D + 20);
        }
        assert_eq!(fire_left_at(&filing, &filed, D + 20), 1);
    });
}

#[test]
fn loom_a_moved_deadline_leaves_the_carried_filing_stale() {
    loom::model(|| {
        let (filing, filed) = filed_at_d();
        // An interval change moves the next tick to D + 15 while the ticker fires D.
        let ticker = {
            let (filing, filed) = (filing.clone(), filed.clone());
            thread::spawn(move || {
                filed.lock().unwrap().retain(|&at| at != D);
                fire(&filing, &filed, D, D);
            })
        };
        file(&filing, &filed, D + 15);
        ticker.join().unwrap();
        assert_eq!(
            fire_left_at(&filing, &filed, D + 10),
            0,
            "the carried one is stale"
        );
        assert_eq!(
            fire_left_at(&filing, &filed, D + 15),
            1,
            "the moved one wakes"
        );
    });
}

#[test]
fn loom_an_ended_connection_is_fired_at_most_once_more() {
    loom::model(|| {
        let (filing, filed) = filed_at_d();
        let ticker = {
            let (filing, filed) = (filing.clone(), filed.clone());
            thread::spawn(move || {
                filed.lock().unwrap().retain(|&at| at != D);
                fire(&filing, &filed, D, D);
            })
        };
        filing.stop_carrying();
        ticker.join().unwrap();
        // Whatever is left fires once and is not carried again.
        let woken = fire_left_at(&filing, &filed, D + 10);
        assert!(woken <= 1);
        assert!(
            filed.lock().unwrap().is_empty(),
            "nothing carried after the end"
        );
    });
}
