import Foundation
import Testing

@testable import Service

#if canImport(Glibc)
    import Glibc
#endif

/// The studio in headless Chromium against a stand-in server that serves its real files (plus a probe script that
/// acts as a user would and writes what it saw into the page), answers the API calls it makes at start, and never
/// answers `/health`: a server that has gone away, as far as the page can tell.
@Suite(.serialized) struct StudioProbeTests {
    /// Serves on a loopback port from a thread of its own, one connection per request (`Connection: close`).
    final class StandInServer: @unchecked Sendable {
        let port: Int
        let listener: Int32
        let probe: String

        init(probe: String) throws {
            self.probe = probe
            listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var yes: Int32 = 1
            setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let fd = listener
            let bound = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard bound == 0, listen(fd, 64) == 0 else { throw ServiceTestError("cannot listen on loopback") }
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            port = Int(UInt16(bigEndian: address.sin_port))
            Thread.detachNewThread { [self] in
                while true {
                    let connection = accept(listener, nil, nil)
                    if connection < 0 { return }
                    Thread.detachNewThread { self.answer(connection) }
                }
            }
        }

        deinit {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
        }

        func answer(_ connection: Int32) {
            defer { close(connection) }
            var head: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while head.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
                let n = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                head += buffer[0..<n]
            }
            let words = String(decoding: head, as: UTF8.self).split(separator: " ")
            let (method, target) = (words.first.map(String.init) ?? "GET", words.dropFirst().first.map(String.init) ?? "/")
            let path = String(target.split(separator: "?").first ?? "/")
            let (status, type, body): (String, String, [UInt8])
            switch path {
            case "/health":
                return  // closed without an answer: unreachable
            case "/", "/index.html":
                let page = StudioAssets.file(at: "/")?.text ?? ""
                (status, type, body) = ("200 OK", "text/html; charset=utf-8", Array(page.replacing("</body>", with: "<script>\(probe)</script></body>").utf8))
            case "/v1/info":
                let info = #"""
                    {"model": "tiny", "version": "stand-in", "auth_required": false, "video": null,
                     "defaults": {"frames": 4, "height": 192, "width": 256, "fov": 60},
                     "limits": {"max_frames": 64, "max_side": 2048, "max_body_bytes": 33554432, "max_queued": 64}}
                    """#
                (status, type, body) = ("200 OK", "application/json", Array(info.utf8))
            case "/v1/jobs":
                (status, type, body) = ("200 OK", "application/json", Array(#"{"jobs": []}"#.utf8))
            case "/v1/jobs/\(StudioProbeTests.jobID)":
                (status, type, body) = ("200 OK", "application/json", Array(StudioProbeTests.completedJob.utf8))
            case "/v1/jobs/\(StudioProbeTests.jobID)/extend":
                (status, type, body) = ("202 Accepted", "application/json", Array(StudioProbeTests.grownJob.utf8))
            case "/v1/jobs/\(StudioProbeTests.jobID)/artifacts/scene.ply":
                (status, type, body) = ("200 OK", "application/octet-stream", StudioProbeTests.sceneBytes)
            default:
                if let file = StudioAssets.file(at: path) {
                    (status, type, body) = ("200 OK", file.contentType, Array(file.text.utf8))
                } else {
                    (status, type, body) = ("404 Not Found", "application/json", Array(#"{"error": "no such thing here"}"#.utf8))
                }
            }
            let answer =
                Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
                + (method == "HEAD" ? [] : body)
            _ = answer.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }

    static let jobID = "0f1e2d3c-stand-in"
    /// The artifact the download test fetches: big enough to arrive in several pieces.
    static let sceneBytes = Array("ply\n".utf8) + [UInt8](repeating: 7, count: 400_000)
    static let completedJob = """
        {"id": "\(jobID)", "kind": "scene", "file_id": "1", "status": "completed", "created_at": 1, "started_at": 2,
         "completed_at": 3, "queue_position": 0, "progress": null, "error": null, "attempts": 1, "worker": null,
         "prompt": "a garden", "frames": 4, "width": 256, "height": 192, "seed": 1, "timings": [], "gaussians": 10,
         "artifacts": {"ply": "/v1/jobs/\(jobID)/artifacts/scene.ply"}}
        """

    static let grownJob = """
        {"id": "1a2b3c4d-grown", "kind": "scene", "file_id": "2", "status": "queued", "created_at": 4, "started_at": null,
         "completed_at": null, "queue_position": 1, "progress": null, "error": null, "attempts": 0, "worker": null,
         "prompt": "a garden", "frames": 4, "width": 256, "height": 192, "seed": 2, "timings": [], "gaussians": null,
         "artifacts": null, "extends": "\(jobID)"}
        """

    /// What `probe` saw in the studio opened on the stand-in's completed job (`?session=`), at 1400x900.
    static func probedWithTheJobOpen(_ probe: String, folder name: String, budget: Int) throws -> [String: Any] {
        let server = try StandInServer(probe: probe)
        let folder = temporaryFolder(name)
        let session = #"{"job": "\#(jobID)"}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let dom = try ServerProcessTests.dumpDOM(
            "http://127.0.0.1:\(server.port)/?session=\(session)", profile: "\(folder)/chromium", budget: budget, extra: ["--window-size=1400,900"])
        return try probed(dom)
    }

    /// What the probe saw, from the `data-probe` attribute it sets on the body.
    static func probed(_ dom: String) throws -> [String: Any] {
        guard let start = dom.range(of: "data-probe=\"") else { throw ServiceTestError("the probe did not finish: \(dom.prefix(400))") }
        let text = dom[start.upperBound...].prefix { $0 != "\"" }.replacing("&quot;", with: "\"").replacing("&amp;", with: "&")
        return (try JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    /// At 1400x900: the header says the server is unreachable; loading a path of 24 cameras sets 24 frames (and says
    /// so); and with the side panel scrolled to its top, the Generate section is still in view.
    @Test func theStudioSaysWhatAUserNeedsToSee() throws {
        let probe = #"""
            (async () => {
              const wait = (ms) => new Promise((r) => setTimeout(r, ms));
              const $ = (id) => document.getElementById(id);
              await wait(3000);
              const seen = { connection: $('connection').textContent, lost: document.body.dataset.connection || '' };
              const cameras = Array.from({ length: 24 }, (_, i) => ({ quaternion: [1, 0, 0, 0], position: [0, 0, -0.1 * i], fx: 200, fy: 200, cx: 128, cy: 96 }));
              $('load-cams').click();
              const files = new DataTransfer();
              files.items.add(new File([JSON.stringify({ cameras })], 'path.json', { type: 'application/json' }));
              $('json-file').files = files.files;
              // Reading the file is not network work, so virtual time does not wait for it: the toast says when it is done.
              const toast = document.querySelector('#toast span');
              const loaded = new Promise((resolve) => {
                const check = () => { if (toast.textContent.includes('Loaded')) resolve(); };
                new MutationObserver(check).observe(toast, { childList: true, characterData: true, subtree: true });
              });
              $('json-file').dispatchEvent(new Event('change'));
              await loaded;
              seen.frames = $('frames').value;
              seen.toast = (document.querySelector('#toast span') || {}).textContent || '';
              $('panel').scrollTop = 0;
              await wait(200);
              const box = $('generate-panel').getBoundingClientRect(), button = $('generate').getBoundingClientRect();
              seen.generateInView = button.top >= 0 && button.bottom <= window.innerHeight && box.top < window.innerHeight;
              seen.panelScrolls = $('panel').scrollHeight > $('panel').clientHeight;
              document.body.setAttribute('data-probe', JSON.stringify(seen));
            })();
            """#
        let server = try StandInServer(probe: probe)
        let folder = temporaryFolder("studio-probe")
        let dom = try ServerProcessTests.dumpDOM(
            "http://127.0.0.1:\(server.port)/", profile: "\(folder)/chromium", budget: 12000, extra: ["--window-size=1400,900"])
        let seen = try Self.probed(dom)
        #expect(seen["connection"] as? String == "server unreachable: retrying" && seen["lost"] as? String == "lost", "\(seen)")
        #expect(seen["frames"] as? String == "24", "\(seen)")
        #expect((seen["toast"] as? String)?.contains("Loaded 24 cameras") == true, "\(seen)")
        #expect(seen["generateInView"] as? Bool == true && seen["panelScrolls"] as? Bool == true, "\(seen)")
    }

    /// Downloads go to disk, not into the page's memory: without a token, a HEAD (waiting out a file made on demand)
    /// and then the browser's own download of the link, no bytes through the page; with a token, the bytes are
    /// written to the file the user picked as they arrive, in pieces, and never gathered into a Blob.
    @Test func downloadsStreamToDisk() throws {
        let probe = #"""
            (async () => {
              const wait = (ms) => new Promise((r) => setTimeout(r, ms));
              const $ = (id) => document.getElementById(id);
              await wait(2500);
              const fetches = [], clicks = [];
              let blobs = 0;
              const realFetch = window.fetch;
              window.fetch = (url, options = {}) => {
                const path = new URL(url, location.href).pathname;
                if (path.includes('/artifacts/')) fetches.push(`${options.method || 'GET'} ${path}`);
                return realFetch(url, options);
              };
              HTMLAnchorElement.prototype.click = function () { clicks.push(`${new URL(this.href).pathname} ${this.download}`); };
              const realObjectURL = URL.createObjectURL;
              URL.createObjectURL = (blob) => { blobs += 1; return realObjectURL(blob); };
              const button = [...$('downloads').querySelectorAll('button')].find((b) => b.textContent.includes('PLY'));
              const seen = { button: !!button };
              if (button) {
                button.click();
                for (let i = 0; i < 100 && !clicks.length; i++) await wait(100);
                seen.plain = { fetches: fetches.splice(0), clicks: clicks.splice(0), blobs };
                localStorage.setItem('diorama.token', 'secret');
                let written = 0, pieces = 0, closed = false, ended;
                // Reading a response body does not hold virtual time back: the file's end (or failure) is awaited instead.
                const end = new Promise((resolve) => { ended = resolve; });
                window.showSaveFilePicker = async () => ({
                  createWritable: async () => new WritableStream({
                    write(chunk) { written += chunk.length; pieces += 1; },
                    close() { closed = true; ended(); },
                    abort() { ended(); },
                  }),
                });
                button.click();
                await end;
                seen.token = { fetches: fetches.splice(0), clicks: clicks.splice(0), blobs, written, pieces, closed };
              }
              document.body.setAttribute('data-probe', JSON.stringify(seen));
            })();
            """#
        let seen = try Self.probedWithTheJobOpen(probe, folder: "studio-downloads", budget: 15000)
        let artifact = "/v1/jobs/\(Self.jobID)/artifacts/scene.ply"
        let plain = seen["plain"] as? [String: Any] ?? [:]
        #expect(plain["fetches"] as? [String] == ["HEAD \(artifact)"], "\(seen)")
        #expect((plain["clicks"] as? [String])?.first?.hasPrefix("\(artifact) diorama-") == true && plain["blobs"] as? Int == 0, "\(seen)")
        let token = seen["token"] as? [String: Any] ?? [:]
        #expect(token["fetches"] as? [String] == ["GET \(artifact)"] && (token["clicks"] as? [String])?.isEmpty == true, "\(seen)")
        #expect(token["written"] as? Int == Self.sceneBytes.count && token["closed"] as? Bool == true && token["blobs"] as? Int == 0, "\(seen)")
    }

    /// "Extend from here" on an opened job's scene posts the viewer's camera (camera #0 where a job opens: the origin,
    /// no rotation) and field of view, the chosen steps and the prompt typed, to `/v1/jobs/{id}/extend`, then follows
    /// the new job.
    @Test func extendFromHerePostsTheViewersCamera() throws {
        let probe = #"""
            (async () => {
              const wait = (ms) => new Promise((r) => setTimeout(r, ms));
              const $ = (id) => document.getElementById(id);
              await wait(2500);
              const posts = [];
              const realFetch = window.fetch;
              window.fetch = (url, options = {}) => {
                const path = new URL(url, location.href).pathname;
                if ((options.method || 'GET') === 'POST') posts.push({ path, body: JSON.parse(options.body || 'null') });
                return realFetch(url, options);
              };
              const seen = { shown: !$('extend').hidden };
              $('extend-prompt').value = 'a greenhouse';
              $('extend-path').value = 'left,left';
              $('extend-go').click();
              for (let i = 0; i < 50 && !posts.length; i++) await wait(100);
              await wait(300);
              seen.posts = posts;
              seen.status = $('job-status').textContent;
              document.body.setAttribute('data-probe', JSON.stringify(seen));
            })();
            """#
        let seen = try Self.probedWithTheJobOpen(probe, folder: "studio-extend", budget: 12000)
        #expect(seen["shown"] as? Bool == true, "\(seen)")
        let post = (seen["posts"] as? [[String: Any]])?.first
        #expect(post?["path"] as? String == "/v1/jobs/\(Self.jobID)/extend", "\(seen)")
        let body = post?["body"] as? [String: Any] ?? [:]
        let start = body["start"] as? [String: Any] ?? [:]
        #expect(start["position"] as? [Double] == [0, 0, 0] && start["orientation"] as? [Double] == [1, 0, 0, 0], "\(seen)")
        #expect(body["path"] as? String == "left,left" && body["text_prompt"] as? String == "a greenhouse", "\(seen)")
        #expect(body["fov"] as? Double == 60, "the viewer's field of view goes with the pose: \(seen)")
        #expect((seen["status"] as? String)?.hasPrefix("Queued") == true, "\(seen)")
    }
}
