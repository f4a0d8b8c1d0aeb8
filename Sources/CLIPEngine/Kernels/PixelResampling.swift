import CLIPKernels

/// Pillow's 8-bit horizontal resampling pass for pixels of 3 or 4 bytes (RGB; RGBA premultiplied,
/// CMYK) on the SIMD kernels, for CLIPData's `Resampler`: the same Int32 arithmetic, so the same
/// bytes.
public enum PixelResampling {
    /// Whether the kernels resample pixels of this many bytes.
    public static func supports(channels: Int) -> Bool { channels == 3 || channels == 4 }

    /// Output pixel `i` of each row reads `count[i]` source pixels from `start[i]`, weighted by
    /// `weights[i * taps ..< i * taps + count[i]]` (Pillow's fixed point, 22 fraction bits).
    public struct Plan {
        let start: [Int], count: [Int]
        let channels: Int
        let grouped: [Int32]
        let vectorsPerOutput: Int

        public init(start: [Int], count: [Int], weights: [Int32], taps: Int, channels: Int) {
            precondition(supports(channels: channels) && start.count == count.count
                         && weights.count >= start.count * taps && count.allSatisfy { $0 <= taps })
            // Room for the widest vectors (16 lanes per tap at worst); the kernel writes what it uses.
            var perOutput = 0
            let grouped = [Int32](unsafeUninitializedCapacity: max(1, start.count * taps * 16)) { g, initialized in
                perOutput = count.withUnsafeBufferPointer { c in
                    weights.withUnsafeBufferPointer { w in
                        kernels.resample_weights_u8(w.baseAddress!, taps, c.baseAddress!, start.count, Int32(channels),
                                                    g.baseAddress!)
                    }
                }
                initialized = g.count
            }
            self.start = start
            self.count = count
            self.channels = channels
            self.grouped = grouped
            vectorsPerOutput = perOutput
        }

        /// `rows` rows of `source` (a row every `sourceStride` bytes from `sourceOffset`) into
        /// `destination` (a row every `destinationStride` bytes). Every pixel a row's outputs read
        /// must lie inside that row.
        public func resample(_ source: UnsafeBufferPointer<UInt8>, sourceOffset: Int, sourceStride: Int, rows: Int,
                             into destination: UnsafeMutablePointer<UInt8>, destinationStride: Int) {
            guard rows > 0, !start.isEmpty else { return }
            let base = source.baseAddress!
            start.withUnsafeBufferPointer { s in
                count.withUnsafeBufferPointer { c in
                    grouped.withUnsafeBufferPointer { g in
                        kernels.resample_rows_u8(base + sourceOffset, sourceStride, base + source.count, rows,
                                                 s.baseAddress!, c.baseAddress!, g.baseAddress!, vectorsPerOutput,
                                                 start.count, Int32(channels), destination, destinationStride)
                    }
                }
            }
        }
    }
}
