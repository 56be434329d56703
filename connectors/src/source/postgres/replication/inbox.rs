//! The queue between the replication connection's reading thread and the source: bounded in
//! bytes, so that a reader ahead of a slow lake holds at most that much and then leaves the
//! rest in the server (TCP pushes back on the walsender, which waits).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Something with a size in bytes.
pub trait Weight {
    fn bytes(&self) -> usize;
}

struct Queue<T> {
    items: VecDeque<T>,
    bytes: usize,
}

/// A queue of at most about `capacity` bytes (one item larger than that still fits alone).
pub struct Inbox<T> {
    queue: Mutex<Queue<T>>,
    capacity: usize,
    added: Condvar,
    taken: Condvar,
}

impl<T: Weight> Inbox<T> {
    pub fn new(capacity: usize) -> Inbox<T> {
        Inbox {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
            }),
            capacity,
            added: Condvar::new(),
            taken: Condvar::new(),
        }
    }

    /// Adds `item` once there is room, waiting at most `wait`; gives it back when there was
    /// none by then.
    pub fn push(&self, item: T, wait: Duration) -> Result<(), T> {
        let size = item.bytes();
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let (mut queue, _) = self
            .taken
            .wait_timeout_while(queue, wait, |q| {
                q.bytes > 0 && q.bytes + size > self.capacity
            })
            .unwrap_or_else(|e| e.into_inner());
        if queue.bytes > 0 && queue.bytes + size > self.capacity {
            return Err(item);
        }
        queue.bytes += size;
        queue.items.push_back(item);
        self.added.notify_one();
        Ok(())
    }

    /// Lets `merge` fold a new item into the newest one queued; `true` when it did (the new
    /// item is then not added).
    pub fn merge_last(&self, merge: impl FnOnce(&mut T) -> bool) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.items.back_mut().is_some_and(merge)
    }

    /// The oldest item, waiting at most `wait` for one.
    pub fn pop(&self, wait: Duration) -> Option<T> {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let (mut queue, _) = self
            .added
            .wait_timeout_while(queue, wait, |q| q.items.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        let item = queue.items.pop_front()?;
        queue.bytes -= item.bytes();
        self.taken.notify_one();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weight for Vec<u8> {
        fn bytes(&self) -> usize {
            self.len()
        }
    }

    #[test]
    fn holds_at_most_its_capacity_in_bytes_but_always_one_item() {
        let inbox: Inbox<Vec<u8>> = Inbox::new(10);
        let short = Duration::from_millis(1);
        assert!(inbox.push(vec![0; 6], short).is_ok());
        assert!(inbox.push(vec![0; 4], short).is_ok());
        assert_eq!(inbox.push(vec![0; 1], short), Err(vec![0; 1]));
        assert_eq!(inbox.pop(short), Some(vec![0; 6]));
        assert!(inbox.push(vec![0; 6], short).is_ok());
        assert_eq!(inbox.pop(short).map(|v| v.len()), Some(4));
        assert_eq!(inbox.pop(short).map(|v| v.len()), Some(6));
        assert_eq!(inbox.pop(short), None);
        // An item larger than the whole capacity goes in when the queue is empty.
        assert!(inbox.push(vec![0; 50], short).is_ok());
        assert_eq!(inbox.pop(short).map(|v| v.len()), Some(50));
    }

    #[test]
    fn an_item_folded_into_the_newest_is_not_added() {
        let inbox: Inbox<Vec<u8>> = Inbox::new(10);
        assert!(!inbox.merge_last(|_| true), "nothing to fold into");
        assert!(inbox.push(vec![1], Duration::ZERO).is_ok());
        assert!(inbox.merge_last(|last| {
            last[0] = 2;
            true
        }));
        assert!(!inbox.merge_last(|_| false));
        assert_eq!(inbox.pop(Duration::ZERO), Some(vec![2]));
        assert_eq!(inbox.pop(Duration::ZERO), None);
    }

    #[test]
    fn a_waiting_push_goes_in_once_an_item_is_taken() {
        let inbox = std::sync::Arc::new(Inbox::<Vec<u8>>::new(4));
        assert!(inbox.push(vec![0; 4], Duration::ZERO).is_ok());
        let taker = std::sync::Arc::clone(&inbox);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            taker.pop(Duration::from_secs(1))
        });
        assert!(inbox.push(vec![1; 4], Duration::from_secs(5)).is_ok());
        assert_eq!(thread.join().unwrap(), Some(vec![0; 4]));
        assert_eq!(inbox.pop(Duration::ZERO), Some(vec![1; 4]));
    }
}
