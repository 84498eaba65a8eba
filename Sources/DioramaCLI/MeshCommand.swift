import ArgumentParser
import FlashWorld
import SplatCore
import SplatIO
import SplatRender

struct MeshCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh",
        abstract: "Turn a splat scene into a coloured triangle mesh (binary glTF), or a collider for physics.",
        discussion: helpText(
            """
            Renders RGB and depth from views that cover the scene from one side (splats are thin sheets that look
            the same from both): from inside (26 directions at its first camera and at its centre, for the rooms
            and landscapes FlashWorld makes) or from outside (26 directions looking in, for an object), fuses them into a truncated signed distance field over the
            scene's extent (the 2nd to 98th percentile of its Gaussians, padded), and extracts the surface with
            marching tetrahedra: closed where the views saw it, coloured per vertex. The grid's voxel and the
            truncation (4 voxels) follow the scene's size; memory is bounded by --resolution.

            glTF is y-up and right-handed like Diorama's camera world, so a scene in another frame (PLY defaults to
            RDF) is turned y-up first. Units are the scene's own: FlashWorld scenes have no metric scale.

            --collider writes a coarser, closed mesh without colours instead: the field is halved until the
            surface has at most --triangles triangles.

            Examples:
              diorama mesh scene.spz -o scene.glb
              diorama mesh scene.ply --collider --triangles 100000 -o collider.glb
            """))

    @Argument(help: "The scene (.ply, .spz or .splat).")
    var scene: String

    @Option(name: .shortAndLong, help: "The mesh to write (.glb).")
    var output: String

    @Option(help: "Voxels along the scene's longest side (16-1024); memory grows with its cube.")
    var resolution = 192

    @Option(help: "Side of each view rendered for the fusion, in pixels (64-2048).")
    var viewSize = 384

    @Option(help: "Where the views look from: inside (from the first camera and the centre, for a generated room or landscape), outside (26 directions looking in, for an object), or auto (inside when the first camera, at the origin, is within the scene).")
    var from: SceneMesher.Viewpoint = .automatic

    @Flag(help: "Write a decimated, closed collider without colours instead of the visual mesh.")
    var collider = false

    @Option(help: "The collider's largest triangle count.")
    var triangles = SceneMesher.defaultColliderTriangles

    @Flag(name: .shortAndLong, help: "No progress bar or summary.")
    var quiet = false

    func validate() throws {
        guard output.lowercased().hasSuffix(".glb") else { throw ValidationError("the mesh is written as binary glTF: name it .glb, not '\(output)'") }
        guard (16...1024).contains(resolution) else { throw ValidationError("--resolution must be 16 to 1024, not \(resolution)") }
        guard (64...2048).contains(viewSize) else { throw ValidationError("--view-size must be 64 to 2048, not \(viewSize)") }
        guard triangles >= 100 else { throw ValidationError("--triangles must be at least 100, not \(triangles)") }
        let voxels = Double(resolution) * Double(resolution) * Double(resolution)
        guard voxels <= Double(TSDFVolume.maxVoxels) else {
            throw ValidationError("--resolution \(resolution) needs \(Int(voxels)) voxels, past the \(TSDFVolume.maxVoxels) this tool holds: use at most 322")
        }
    }

    func run() throws {
        var (cloud, description) = try reportingErrors { () throws(SplatFileError) in
            let input = try InputSource(path: scene)
            let bar = ProgressBar("reading \(scene)", enabled: !quiet)
            defer { bar.finish() }
            return try SplatFile.read(input, progress: bar.handler)
        }
        if cloud.frame != .rub { cloud = cloud.converted(to: .rub) }
        var options = SceneMesher.Options()
        options.resolution = resolution
        options.viewSize = viewSize
        options.viewpoint = from
        // The cameras the scene was generated along, where its file records them (in its RUB frame).
        options.pathViews = SceneRecord(metadata: description.metadata)?.pathCameras ?? []
        let mesher = SceneMesher(options: options)
        let start = monotonicSeconds()
        let bar = ProgressBar("fusing views", enabled: !quiet)
        let volume = try reportingErrors { () throws(RenderError) in
            try mesher.fuse(cloud) { done, total in bar.update(Int64(done), Int64(total)) }
        }
        bar.finish()
        let mesh = try reportingErrors { () throws(RenderError) in
            collider ? try SceneMesher.collider(from: volume, triangles: triangles) : volume.extractSurface()
        }
        guard mesh.triangleCount > 0 else {
            try reportingErrors { () throws(RenderError) in
                throw RenderError(.emptyScene, "no surface was found in \(scene): its views saw nothing opaque enough to fuse")
            }
            return
        }
        let bytes = try reportingErrors { () throws(SplatFileError) in try GLBWriter.encode(mesh) }
        try reportingErrors { () throws(SplatFileError) in try writeOutput(bytes, to: output) }
        if !quiet {
            let open = mesh.openEdgeCount
            print(
                "\(collider ? "collider" : "mesh") of \(mesh.vertexCount) vertices and \(mesh.triangleCount) triangles (\(open == 0 ? "closed" : "\(open) open edges")) from a \(volume.dimensions.x)x\(volume.dimensions.y)x\(volume.dimensions.z) grid of \(formatted(volume.voxelSize)) voxels\(options.pathViews.isEmpty ? "" : ", with \(options.pathViews.count) views along the path it was generated on,") in \(formatted(Float(monotonicSeconds() - start))) s: \(output)"
            )
        }
    }
}

extension SceneMesher.Viewpoint: ExpressibleByArgument {}
