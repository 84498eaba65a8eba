import Foundation
import Hummingbird
import HummingbirdTesting
import SplatCore
import SplatIO
import Testing

@testable import Service

/// FlashWorld's current web client, call for call (`index.html` at 424db44, L1181-1321): it reads each event stream
/// whole and keeps the last `event:` and `data:` lines.
struct GradioAPITests {
    static func lastEvent(_ text: String) -> (event: String?, data: String?) {
        var event: String?, data: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) } else if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
        }
        return (event, data)
    }

    @Test func theFlashWorldWebClientFlowWorks() async throws {
        let folder = temporaryFolder("gradio")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        try await service.start()
        try await application(service).test(.live) { client in
            let request = String(buffer: requestBody())
            let call = JSONText.encode(["data": [request]])
            var event = ""
            try await client.execute(uri: "/gradio_api/call/gradio_generate", method: .post, body: ByteBuffer(string: call)) { response in
                event = json(response.body)["event_id"] as? String ?? ""
            }
            var answer: [String: Any] = [:]
            try await client.execute(uri: "/gradio_api/call/gradio_generate/\(event)", method: .get) { response in
                let (kind, data) = Self.lastEvent(String(buffer: response.body))
                #expect(kind == "complete")
                let outer = try JSONSerialization.jsonObject(with: Data((data ?? "").utf8)) as? [String]
                answer = (try? JSONSerialization.jsonObject(with: Data((outer?.first ?? "").utf8))) as? [String: Any] ?? [:]
            }
            #expect(answer["success"] as? Bool == true && answer["generation_time"] is Double)
            let fileID = answer["file_id"] as? String ?? ""
            var download = ""
            try await client.execute(
                uri: "/gradio_api/call/download_file", method: .post, body: ByteBuffer(string: JSONText.encode(["data": [fileID]]))
            ) { download = json($0.body)["event_id"] as? String ?? "" }
            var url = ""
            try await client.execute(uri: "/gradio_api/call/download_file/\(download)", method: .get) { response in
                let (kind, data) = Self.lastEvent(String(buffer: response.body))
                #expect(kind == "complete")
                let files = try JSONSerialization.jsonObject(with: Data((data ?? "").utf8)) as? [[String: Any]]
                url = files?.first?["url"] as? String ?? ""
            }
            #expect(url.hasPrefix("http://") && url.hasSuffix("/gradio_api/file/\(fileID).spz"), "the page fetches it from its own origin")
            let path = String(url[url.range(of: "/gradio_api/file/")!.lowerBound...])
            try await client.execute(uri: path, method: .get) { response in
                let bytes = [UInt8](buffer: response.body)
                #expect(response.status == .ok && Array(bytes.prefix(2)) == [0x1F, 0x8B])
                // As FlashWorld writes it: positions as they are in camera 0's frame, no frame extension.
                let (spz, description) = try SplatFile.read(InputSource(bytes: bytes), format: .spz)
                let (ply, _) = try SplatFile.read(InputSource(path: service.artifactPath(fileID)))
                #expect(spz.count == ply.pruned(minOpacity: 0.00025).count && description.spz?.recordedFrame == nil)
                #expect(zip(spz.positions, ply.pruned(minOpacity: 0.00025).positions).allSatisfy { abs($0 - $1) < 1e-3 })
            }
            // The page then tells the server to delete (Flask style), which works here too.
            try await client.execute(uri: "/delete/\(fileID)", method: .post) { #expect($0.status == .ok) }
            // A refused request is a result with "error", as the reference's gradio_generate answers it.
            let bad = JSONText.encode(["data": [#"{"text_prompt": "", "cameras": []}"#]])
            try await client.execute(uri: "/gradio_api/call/gradio_generate", method: .post, body: ByteBuffer(string: bad)) { event = json($0.body)["event_id"] as? String ?? "" }
            try await client.execute(uri: "/gradio_api/call/gradio_generate/\(event)", method: .get) { response in
                let (_, data) = Self.lastEvent(String(buffer: response.body))
                let outer = try JSONSerialization.jsonObject(with: Data((data ?? "").utf8)) as? [String]
                let result = (try? JSONSerialization.jsonObject(with: Data((outer?.first ?? "").utf8))) as? [String: Any]
                #expect(field(result, "error").contains("No Prompts provided"))
            }
            try await client.execute(uri: "/gradio_api/call/gradio_generate", method: .post, body: ByteBuffer(string: "{}")) { #expect($0.status == .badRequest) }
        }
        await service.stop()
    }
}
