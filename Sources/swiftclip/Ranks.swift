import ArgumentParser
import CLIPDistributed
import Foundation

/// Runs `body` as this process's rank of the launcher's MPI job (`Communicator.world()`: alone
/// unless mpirun or srun started several), then leaves the job. When it fails in a job of several
/// ranks, it says which rank failed and aborts the whole job: the other ranks are waiting in a
/// collective and would otherwise wait for ever.
func runAsRank(_ body: (Communicator) throws -> Void) throws {
    let communicator: Communicator
    do { communicator = try Communicator.world() } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
    do {
        try body(communicator)
        communicator.finalize()
    } catch {
        guard communicator.size > 1 else { throw error }
        let rank = "rank \(communicator.rank) of \(communicator.size)"
        // runReportingErrors has printed the error itself (and thrown ExitCode).
        if !(error is ExitCode) {
            FileHandle.standardError.write(Data("error: \(rank): \((error as? ValidationError)?.message ?? "\(error)")\n".utf8))
        }
        FileHandle.standardError.write(Data("error: \(rank) failed; ending the MPI job\n".utf8))
        communicator.abort(code: 1)
    }
}
