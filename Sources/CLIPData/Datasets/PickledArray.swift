import CLIPEngine

/// A NumPy array pickled with `numpy.core.multiarray._reconstruct` (protocols 2–4) or
/// `numpy.core.numeric._frombuffer` (in-band protocol 5).
public struct PickledArray {
    public let shape: [Int]
    /// NumPy's type code without byte order, e.g. "u1".
    public let dtype: String
    public let data: [UInt8]

    /// Interprets `value` as an ndarray; `what` names it in errors.
    public init(_ value: PickleValue, file: String, what: String) throws {
        func bad(_ m: String) -> PickleError { PickleError(file: file, offset: nil, message: "\(what): \(m)") }
        guard case .object(let o) = value, case .global(let module, let name) = o.callable else {
            throw bad("expected a NumPy array, found \(value.kind)")
        }
        func ints(_ v: PickleValue) throws -> [Int] {
            guard case .tuple(let t) = v else { throw bad("shape is a \(v.kind)") }
            return try t.map { if case .int(let i) = $0, i >= 0 { return i } else { throw bad("bad shape entry") } }
        }
        func dtypeCode(_ v: PickleValue) throws -> String {
            if let s = v.text { return s }
            guard case .object(let d) = v, case .global(_, "dtype") = d.callable, let code = d.args.first?.text else {
                throw bad("unrecognised dtype \(v.kind)")
            }
            return code
        }
        let isNumpy = module.hasPrefix("numpy.") || module == "numpy"
        if isNumpy && name == "_reconstruct" {
            guard case .tuple(let st)? = o.state, st.count == 5 else { throw bad("ndarray state is not (version, shape, dtype, fortran, data)") }
            if case .bool(true) = st[3] { throw bad("Fortran-order arrays are not supported") }
            guard case .bytes(let raw) = st[4] else { throw bad("ndarray data is a \(st[4].kind), not raw bytes") }
            shape = try ints(st[1]); dtype = try dtypeCode(st[2]); data = raw
        } else if isNumpy && name == "_frombuffer" {
            guard o.args.count == 4, case .bytes(let raw) = o.args[0] else { throw bad("unsupported _frombuffer arguments") }
            if o.args[3].text == "F" { throw bad("Fortran-order arrays are not supported") }
            shape = try ints(o.args[2]); dtype = try dtypeCode(o.args[1]); data = raw
        } else {
            throw bad("expected a NumPy array, found \(module).\(name)(...)")
        }
    }
}
