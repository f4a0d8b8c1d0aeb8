// Swift side of tools/bench/tokenizer_bench.sh: compiled together with Sources/CLIPTokenizer/*.swift
// (one module, no SwiftPM), so it runs before the `swiftclip tokenize` CLI exists.
// usage: tokbench VOCAB CAPTIONS.txt IDS_OUT.bin
import Foundation

let args = CommandLine.arguments
let clock = ContinuousClock()
func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

var tokenizer: CLIPTokenizer!
let load = clock.measure { tokenizer = try! CLIPTokenizer(vocabularyURL: URL(fileURLWithPath: args[1])) }
let captions = try! String(contentsOfFile: args[2], encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
var rows: [[Int32]] = []
let cold = clock.measure { rows = tokenizer.tokenize(captions) }
let warm = clock.measure { rows = tokenizer.tokenize(captions) }
var flat = rows.flatMap { $0 }
try! Data(bytes: &flat, count: flat.count * 4).write(to: URL(fileURLWithPath: args[3]))
print(String(format: "swift   load %.3f s | cold cache %8.0f texts/s | warm cache %8.0f texts/s",
             seconds(load), Double(captions.count) / seconds(cold), Double(captions.count) / seconds(warm)))
