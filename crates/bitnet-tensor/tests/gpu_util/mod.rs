//! Shared by the GPU kernel tests: one device for the whole test binary, and a "pool" — one
//! big buffer whose operands sit at aligned, non-zero offsets, with outputs between guard
//! ranges that must stay untouched.
#![allow(dead_code)]

use bitnet_tensor::gpu::{wgpu, GpuContext, GpuKernels, GpuSlice};
use std::sync::OnceLock;

/// The byte every untouched place of a pool holds.
pub const GUARD: u8 = 0xA5;
/// Bytes of guard on each side of an output.
pub const GUARD_LEN: u64 = 256;

/// The device and kernels, or `None` (after saying why) when there is no GPU. With
/// `BITNET_REQUIRE_GPU=1` a missing GPU fails the test instead.
pub fn gpu() -> Option<&'static (GpuContext, GpuKernels)> {
    static GPU: OnceLock<Result<(GpuContext, GpuKernels), String>> = OnceLock::new();
    let got = GPU.get_or_init(|| {
        let ctx = GpuContext::new().map_err(|e| e.to_string())?;
        let info = ctx.adapter_info();
        eprintln!(
            "GPU: {} ({:?}, {:?})",
            info.name, info.backend, info.device_type
        );
        let kernels = GpuKernels::new(ctx.device()).map_err(|e| e.to_string())?;
        Ok((ctx, kernels))
    });
    match got {
        Ok(g) => Some(g),
        Err(why) => {
            if std::env::var("BITNET_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("BITNET_REQUIRE_GPU=1 and no GPU: {why}");
            }
            eprintln!("skipping GPU test: {why}");
            None
        }
    }
}

/// A range of the pool buffer.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub offset: u64,
    pub size: u64,
}

/// One big buffer filled with [`GUARD`], with a bump allocator that places operands at
/// offsets aligned to the device's storage offset alignment, the first one at 256.
/// `capacity` need only count the operands' bytes: the pool adds room for padding.
pub struct Pool<'c> {
    ctx: &'c GpuContext,
    align: u64,
    pub buffer: wgpu::Buffer,
    next: u64,
    outputs: Vec<Range>,
}

impl<'c> Pool<'c> {
    pub fn new(ctx: &'c GpuContext, kernels: &GpuKernels, capacity: u64) -> Self {
        let align = kernels.offset_alignment().max(256);
        // Room for the alignment and the guards of a dozen operands besides their bytes.
        let capacity = capacity.div_ceil(align) * align + 32 * align.max(GUARD_LEN);
        let buffer = ctx.storage_buffer(capacity);
        ctx.upload(GpuSlice::whole(&buffer), &vec![GUARD; capacity as usize])
            .expect("fill the pool");
        Pool {
            ctx,
            align,
            buffer,
            next: align,
            outputs: Vec::new(),
        }
    }

    /// Moves the next placement to at least `offset` (aligned up).
    pub fn skip_to(&mut self, offset: u64) {
        self.next = self.next.max(offset.div_ceil(self.align) * self.align);
    }

    /// Places `bytes` (zero-padded to a word) at the next aligned offset.
    pub fn put(&mut self, bytes: &[u8]) -> Range {
        let r = self.reserve((bytes.len() as u64).div_ceil(4) * 4);
        self.ctx.upload(self.slice(r), bytes).expect("upload");
        r
    }

    pub fn put_f32(&mut self, values: &[f32]) -> Range {
        self.put(bytemuck::cast_slice(values))
    }

    /// An output range of `size` bytes (left holding [`GUARD`]) with [`GUARD_LEN`] guard
    /// bytes before and after it, checked by [`check_guards`](Self::check_guards).
    pub fn output(&mut self, size: u64) -> Range {
        let size = size.div_ceil(4) * 4;
        self.skip_to(self.next + GUARD_LEN);
        let r = self.reserve(size);
        self.next += GUARD_LEN;
        self.outputs.push(r);
        r
    }

    fn reserve(&mut self, size: u64) -> Range {
        let r = Range {
            offset: self.next,
            size,
        };
        self.next = (self.next + size).div_ceil(self.align) * self.align;
        assert!(self.next <= self.buffer.size(), "pool too small");
        r
    }

    pub fn slice(&self, r: Range) -> GpuSlice<'_> {
        GpuSlice::new(&self.buffer, r.offset, r.size)
    }

    pub fn read(&self, r: Range) -> Vec<u8> {
        self.ctx.read(self.slice(r)).expect("read back")
    }

    pub fn read_f32(&self, r: Range) -> Vec<f32> {
        self.ctx.read_f32(self.slice(r)).expect("read back")
    }

    /// Asserts that the guard bytes around every output still hold [`GUARD`].
    pub fn check_guards(&self) {
        for o in &self.outputs {
            for (what, at) in [
                ("before", o.offset - GUARD_LEN),
                ("after", o.offset + o.size),
            ] {
                let g = self.read(Range {
                    offset: at,
                    size: GUARD_LEN,
                });
                let bad = g.iter().position(|&b| b != GUARD);
                assert_eq!(
                    bad, None,
                    "guard {what} the output at {} was written",
                    o.offset
                );
            }
        }
    }
}

/// Units in the last place between two finite f32s of the same sign (0 if equal).
pub fn ulps(a: f32, b: f32) -> u32 {
    if a == b {
        return 0;
    }
    let key = |v: f32| {
        let bits = v.to_bits() as i64;
        if bits < 0x8000_0000 {
            bits
        } else {
            0x8000_0000 - bits
        }
    };
    (key(a) - key(b)).unsigned_abs() as u32
}
