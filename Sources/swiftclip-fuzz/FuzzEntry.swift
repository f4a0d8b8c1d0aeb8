import CLIPFuzzTargets
import Foundation

// Built two ways (scripts/fuzz.sh):
// - with `-sanitize=fuzzer,address -DFUZZING`: libFuzzer's main calls LLVMFuzzerTestOneInput for
//   the target named by SWIFTCLIP_FUZZ_TARGET;
// - plainly (the normal `swift build`): `swiftclip-fuzz TARGET FILE...` replays inputs, printing
//   each one's outcome (the regression tests do the same in-process).
#if FUZZING
private let target: FuzzTarget = {
    guard let t = FuzzTarget.fromEnvironment else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        FileHandle.standardError.write(Data("set SWIFTCLIP_FUZZ_TARGET to one of: \(names)\n".utf8))
        exit(64)
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    _ = try? target.run(bytes)
    return 0
}

// SwiftPM links an executable's `main` to `<module>_main` (swiftclip_fuzz_main), so libFuzzer's own
// main is never used: this one hands the command line to libFuzzer's driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@_cdecl("swiftclip_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc, vector = argv
    return LLVMFuzzerRunDriver(&count, &vector, fuzzOneInput)
}
#else
@main
struct Replay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let target = FuzzTarget(rawValue: name), args.count > 1 else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
            FileHandle.standardError.write(Data("usage: swiftclip-fuzz \(names) FILE...\n".utf8))
            exit(64)
        }
        for path in args.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("\(path): cannot read"); continue
            }
            do { try target.run([UInt8](data)); print("\(path): ok") } catch { print("\(path): \(error)") }
        }
    }
}
#endif
