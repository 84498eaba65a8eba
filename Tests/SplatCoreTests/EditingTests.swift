import Testing

@testable import SplatCore

@Suite struct EditingTests {
    @Test func pruneByOpacity() {
        var cloud = GaussianCloud(count: 4, shDegree: 0)
        cloud.logitOpacities = [-10, 0, 10, -1]
        let kept = cloud.pruned(minOpacity: 0.3)
        #expect(kept.count == 2)
        #expect(kept.logitOpacities == [0, 10])
    }

    @Test func keepMostImportantInFileOrder() {
        var cloud = GaussianCloud(count: 5, shDegree: 1)
        cloud.logScales = [Float](repeating: 0, count: 15)
        cloud.logitOpacities = [1, 5, -2, 3, 0]
        cloud.positions = (0..<15).map(Float.init)
        let kept = cloud.keepingMostImportant(2)
        #expect(kept.logitOpacities == [5, 3])
        #expect(kept.positions == [3, 4, 5, 9, 10, 11])
        #expect(cloud.keepingMostImportant(10).count == 5)
    }

    @Test func shDegreeTruncatesAndPads() {
        let cloud = GaussianCloud.synthetic(count: 3, shDegree: 2)
        let down = cloud.withSHDegree(1)
        #expect(down.shStride == 12)
        #expect(Array(down.sh[12..<24]) == Array(cloud.sh[27..<39]))
        let up = down.withSHDegree(3)
        #expect(up.shStride == 48)
        #expect(Array(up.sh[0..<12]) == Array(down.sh[0..<12]))
        #expect(up.sh[12..<48].allSatisfy { $0 == 0 })
    }

    @Test func columnLengthsAreChecked() {
        #expect(throws: GaussianCloudError.self) {
            try GaussianCloud(positions: [0, 0], logScales: [], rotations: [], logitOpacities: [0], sh: [], shDegree: 0)
        }
    }
}
