//! Size bands: how live bytes are split when the input does not say which pool served a
//! block. Bounds follow the pool's own scale: one page, sixteen pages, the default small
//! threshold (1 MiB), and sixteen times that.

/// A range of block sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SizeBand {
    /// Under 4 KiB.
    Under4KiB,
    /// 4 KiB up to (not including) 64 KiB.
    From4KiB,
    /// 64 KiB up to 1 MiB.
    From64KiB,
    /// 1 MiB up to 16 MiB.
    From1MiB,
    /// 16 MiB and more.
    From16MiB,
}

impl SizeBand {
    /// Every band, smallest first.
    pub const ALL: [SizeBand; 5] = [
        SizeBand::Under4KiB,
        SizeBand::From4KiB,
        SizeBand::From64KiB,
        SizeBand::From1MiB,
        SizeBand::From16MiB,
    ];

    /// The band of a block of `size` bytes.
    pub fn of(size: u64) -> Self {
        match size {
            s if s < 4 << 10 => SizeBand::Under4KiB,
            s if s < 64 << 10 => SizeBand::From4KiB,
            s if s < 1 << 20 => SizeBand::From64KiB,
            s if s < 16 << 20 => SizeBand::From1MiB,
            _ => SizeBand::From16MiB,
        }
    }

    /// The series name shown in reports.
    pub fn name(self) -> &'static str {
        match self {
            SizeBand::Under4KiB => "< 4 KiB",
            SizeBand::From4KiB => "4 KiB - 64 KiB",
            SizeBand::From64KiB => "64 KiB - 1 MiB",
            SizeBand::From1MiB => "1 MiB - 16 MiB",
            SizeBand::From16MiB => ">= 16 MiB",
        }
    }

    /// Position in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        self as usize
    }
}
