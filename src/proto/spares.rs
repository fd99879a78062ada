//! Working memory lent and taken back: a bounded stack of boxes that idle
//! users gave back, for the next user with traffic. With one per event loop,
//! steady traffic allocates none.

/// What a [`Spares`] keeps.
pub trait Spare: Default {
    /// Its size with the buffers it keeps.
    fn held_bytes(&self) -> usize;
    /// Readies it for its next user: frees what is too large to keep.
    fn recycle(&mut self);
    /// Marks it as lent by a pool, so that it goes back to one.
    fn mark_lent(&mut self);
}

/// What a pool keeps, over all its spares.
pub(crate) const POOL_BYTES: usize = 1 << 20;

/// The spares of one kind; at most 1 MiB of them.
#[derive(Debug)]
pub struct Spares<T> {
    // Boxed: a spare moves to its user and back as the box it lives in, never reallocated.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<T>>,
    /// What the spares hold, counted as they were put back.
    bytes: usize,
}

impl<T> Default for Spares<T> {
    fn default() -> Self {
        Self { spare: Vec::new(), bytes: 0 }
    }
}

impl<T> Spares<T> {
    /// Spares held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.spare.len()
    }

    /// Whether it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spare.is_empty()
    }
}

impl<T: Spare> Spares<T> {
    /// A spare, or a new one; marked as lent.
    pub(crate) fn take(&mut self) -> Box<T> {
        let mut spare = match self.spare.pop() {
            Some(spare) => {
                self.bytes -= spare.held_bytes();
                spare
            }
            None => Box::default(),
        };
        spare.mark_lent();
        spare
    }

    /// Takes back an idle one, unless the pool is full.
    pub(crate) fn put(&mut self, mut spare: Box<T>) {
        spare.recycle();
        let held = spare.held_bytes();
        if self.bytes + held <= POOL_BYTES {
            self.bytes += held;
            self.spare.push(spare);
        }
    }
}
