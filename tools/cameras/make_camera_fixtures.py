#!/usr/bin/env python3
"""Reference values for the Cameras module, computed in float64 from the written spec.

Writes Tests/CamerasTests/Fixtures/camera_cases.json (committed; the Swift tests never run Python):

    python3 tools/cameras/make_camera_fixtures.py            # from the repository root

Which formula each section follows (spec = /work/shared/spec at the time of writing; the FlashWorld reference,
imlixinyang/FlashWorld 424db44, was read only to settle operation order and edge cases):

- quaternion_to_matrix    flashworld-model.md §11.1 (pytorch3d formula with two_s = 2/|q|^2; utils.py L150-176)
- matrix_to_quaternion    flashworld-model.md §11.2 (pytorch3d best-conditioned candidate, then w >= 0); each case
                          records the chosen candidate as "branch" (0 = w, 1 = x, 2 = y, 3 = z largest)
- normalize_cameras       flashworld-model.md §11.2 (re-base on camera 0, T_norm, divide by T_norm + 0.01)
- rays / raymap           flashworld-model.md §11.3 (u = i/cx_p, dir = ((u-1) cx_p/fx_p, -(v-1) cy_p/fy_p, -1),
                          raymap = [d, o - (o.d) d])
- resample                flashworld-model.md §11.4 (sample_from_dense_cameras: slerp with the caller's sign flip,
                          acos(clamp(d, 0, 1)), 1/(sin + 1e-10), q0 below 1e-5 rad, normalise; lerp the rest)
- opencv                  flashworld-model.md §9 (columns 1, 2 of R negated, viewmat = inverse(c2w), K from W, H)
- api_json                flashworld-model.md §11.1, service-and-ui.md §1.1/§1.2 (app.py L463-466)
- ui_intrinsics           service-and-ui.md §1.4 step 4 (fx = fy = 0.5 H / tan(fov/2), cx = W/2, cy = H/2)
- templates               service-and-ui.md §1.4 step 2 (index.html L1724-1904), three.js Vector3/Quaternion maths
- ui_interpolation        service-and-ui.md §1.4 step 4, flashworld-model.md §11.4 (index.html L1553-1601),
                          three.js Vector3.lerp and Quaternion.slerp
- three_set_from_unit_vectors   three.js Quaternion.setFromUnitVectors, both branches (used by the orbit templates)

Conventions: quaternions are [w, x, y, z] (real first) everywhere in the JSON, including the three.js cases (three.js
stores x, y, z, w internally). Matrices are row-major flat lists. Camera vectors are the 11-D
[qw qx qy qz px py pz fx/W fy/H cx/W cy/H] with camera-to-world rotation and OpenGL camera axes (+x right, +y up,
looking down -z). The resampling parameter t of every `resample` case is stored in the case (t_k = k/(M-1) in float64),
so a test does not depend on how linspace is evaluated.

The three.js functions below replay three.js r17x's operation order in IEEE double (JavaScript numbers), so the values
should agree with a browser to the last bit or so (Math.sin/cos/atan2 may differ by an ulp between libms).
"""

import json
import math
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[2] / "Tests" / "CamerasTests" / "Fixtures" / "camera_cases.json"


# ----------------------------------------------------------------------------------------------------------------------
# §11.1 / §11.2: quaternion <-> matrix (FlashWorld / pytorch3d conventions, real part first)
# ----------------------------------------------------------------------------------------------------------------------

def quaternion_to_matrix(q):
    """§11.1: rotation matrix of a real-first quaternion; two_s = 2/|q|^2 makes unnormalised q give a rotation."""
    r, i, j, k = (float(c) for c in q)
    two_s = 2.0 / (r * r + i * i + j * j + k * k)
    return np.array([
        [1 - two_s * (j * j + k * k), two_s * (i * j - k * r), two_s * (i * k + j * r)],
        [two_s * (i * j + k * r), 1 - two_s * (i * i + k * k), two_s * (j * k - i * r)],
        [two_s * (i * k - j * r), two_s * (j * k + i * r), 1 - two_s * (i * i + j * j)],
    ], dtype=np.float64)


def _sqrt_positive_part(x):
    return math.sqrt(x) if x > 0 else 0.0


def matrix_to_quaternion(m):
    """§11.2: pytorch3d's best-conditioned branch. Returns (q [w,x,y,z] with w >= 0, index of the chosen candidate)."""
    m = np.asarray(m, dtype=np.float64)
    m00, m01, m02 = m[0]
    m10, m11, m12 = m[1]
    m20, m21, m22 = m[2]
    q_abs = [
        _sqrt_positive_part(1.0 + m00 + m11 + m22),
        _sqrt_positive_part(1.0 + m00 - m11 - m22),
        _sqrt_positive_part(1.0 - m00 + m11 - m22),
        _sqrt_positive_part(1.0 - m00 - m11 + m22),
    ]
    # The quaternion multiplied by r, i, j and k respectively (one candidate per row).
    by_rijk = [
        [q_abs[0] ** 2, m21 - m12, m02 - m20, m10 - m01],
        [m21 - m12, q_abs[1] ** 2, m10 + m01, m02 + m20],
        [m02 - m20, m10 + m01, q_abs[2] ** 2, m12 + m21],
        [m10 - m01, m20 + m02, m21 + m12, q_abs[3] ** 2],
    ]
    best = int(np.argmax(q_abs))  # first maximum on ties, like torch.argmax
    denom = 2.0 * max(q_abs[best], 0.1)
    q = [c / denom for c in by_rijk[best]]
    if q[0] < 0:
        q = [-c for c in q]
    return q, best


def c2w_matrix(cam):
    """4x4 camera-to-world matrix [R(q) | p] of an 11-vector (or any vector starting with q, p)."""
    c2w = np.eye(4)
    c2w[:3, :3] = quaternion_to_matrix(cam[0:4])
    c2w[:3, 3] = cam[4:7]
    return c2w


# ----------------------------------------------------------------------------------------------------------------------
# §11.2: normalize_cameras
# ----------------------------------------------------------------------------------------------------------------------

def normalize_cameras(cams):
    """§11.2: re-base every camera on camera 0, scale translations by 1/(T_norm + 0.01), intrinsics unchanged."""
    c2ws = [c2w_matrix(c) for c in cams]
    ref_w2c = np.linalg.inv(c2ws[0])
    rebased = [ref_w2c @ c for c in c2ws]
    t_norm = max(float(np.linalg.norm(c[:3, 3])) for c in rebased)
    out = []
    for cam, c in zip(cams, rebased):
        q, _ = matrix_to_quaternion(c[:3, :3])
        t = c[:3, 3] / (t_norm + 0.01)
        out.append(list(q) + [float(v) for v in t] + [float(v) for v in cam[7:11]])
    return out, ref_w2c, t_norm


# ----------------------------------------------------------------------------------------------------------------------
# §11.3: rays and raymaps
# ----------------------------------------------------------------------------------------------------------------------

def create_rays(cam, h, w):
    """§11.3 with uv_offset = 0. Returns (rays_o, rays_d) as (h, w, 3) arrays.

    The camera-space direction is evaluated as the spec's first line writes it (and as utils.py does):
    u = i/cx_p, x = (u - 1)*cx_p/fx_p, y = -(v - 1)*cy_p/fy_p, z = -1.
    """
    R = quaternion_to_matrix(cam[0:4])
    o = np.array(cam[4:7], dtype=np.float64)
    fx, fy, cx, cy = (float(v) for v in cam[7:11])
    fx, cx = fx * w, cx * w
    fy, cy = fy * h, cy * h
    rays_o = np.zeros((h, w, 3))
    rays_d = np.zeros((h, w, 3))
    for row in range(h):
        for col in range(w):
            i = col + 0.5
            j = row + 0.5
            u = i / cx
            v = j / cy
            d_cam = np.array([(u - 1) * cx / fx, -((v - 1) * cy / fy), -1.0])
            d = R @ d_cam
            d = d / max(float(np.linalg.norm(d)), 1e-12)
            rays_o[row, col] = o
            rays_d[row, col] = d
    return rays_o, rays_d


def create_raymap(cam, h, w):
    """§11.3: 6 channels [d, o - (o.d) d] (foot of the perpendicular from the origin, not the Pluecker moment)."""
    rays_o, rays_d = create_rays(cam, h, w)
    od = np.sum(rays_o * rays_d, axis=-1, keepdims=True)
    return rays_o, rays_d, np.concatenate([rays_d, rays_o - od * rays_d], axis=-1)


# ----------------------------------------------------------------------------------------------------------------------
# §11.4: sample_from_dense_cameras (reference slerp)
# ----------------------------------------------------------------------------------------------------------------------

def reference_slerp(q0, q1, frac):
    """§11.4 quaternion_slerp after the caller's flip: acos(clamp(d,0,1)), 1/(sin+1e-10), q0 when angle < 1e-5."""
    d = float(np.dot(q0, q1))
    angle = math.acos(min(max(d, 0.0), 1.0))
    isin = 1.0 / (math.sin(angle) + 1e-10)
    q = q0 * (math.sin((1.0 - frac) * angle) * isin) + q1 * (math.sin(frac * angle) * isin)
    if angle < 1e-5:
        q = q0.copy()
    return q


def sample_from_dense_cameras(dense, ts):
    """§11.4: resample an (N, 11) path at parameters ts in [0, 1].

    Like the reference, the output quaternion keeps the sign of the (possibly negated) b: a sample at frac = 1 of a
    segment whose dot(a, b) < 0 is -b (same rotation). The N=5 case ends that way on purpose.
    """
    dense = np.asarray(dense, dtype=np.float64)
    n = dense.shape[0]
    out = []
    for t in ts:
        s = t * (n - 1)
        left = min(max(math.floor(s), 0), n - 2)
        frac = s - left
        a, b = dense[left], dense[left + 1]
        qa, qb = a[0:4].copy(), b[0:4].copy()
        if float(np.dot(qa, qb)) < 0:
            qb = -qb
        q = reference_slerp(qa, qb, frac)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        rest = (1 - frac) * a[4:] + frac * b[4:]  # position and intrinsics: (1-f) a + f b
        out.append([float(v) for v in q] + [float(v) for v in rest])
    return out


# ----------------------------------------------------------------------------------------------------------------------
# §9: OpenCV view matrix and intrinsics for the renderer
# ----------------------------------------------------------------------------------------------------------------------

def opencv_camera(cam, width, height):
    """§9: c2w with rotation columns 1 and 2 negated (OpenGL -> OpenCV), viewmat = inverse(c2w), K in pixels."""
    c2w = c2w_matrix(cam)
    c2w[:3, 1:3] *= -1
    viewmat = np.linalg.inv(c2w)
    fx, fy, cx, cy = (float(v) for v in cam[7:11])
    K = np.array([[fx * width, 0.0, cx * width], [0.0, fy * height, cy * height], [0.0, 0.0, 1.0]])
    return viewmat, K


# ----------------------------------------------------------------------------------------------------------------------
# §11.1 / service-and-ui §1.4: request JSON and the web UI's intrinsics
# ----------------------------------------------------------------------------------------------------------------------

def api_json_to_vector(cam_json, width, height):
    """app.py L463-466: [qw qx qy qz px py pz fx/W fy/H cx/W cy/H] (the reference casts to float32; we stay float64)."""
    return ([float(v) for v in cam_json["quaternion"]] + [float(v) for v in cam_json["position"]]
            + [cam_json["fx"] / width, cam_json["fy"] / height, cam_json["cx"] / width, cam_json["cy"] / height])


def ui_intrinsics(fov_degrees, width, height):
    """§1.4 step 4, in index.html's evaluation order: 0.5 / tan(0.5*fov*PI/180) * H; cx = 0.5*W; cy = 0.5*H."""
    f = 0.5 / math.tan(0.5 * fov_degrees * math.pi / 180) * height
    return f, f, 0.5 * width, 0.5 * height


# ----------------------------------------------------------------------------------------------------------------------
# three.js maths (Vector3 as (x, y, z) tuples, Quaternion as (x, y, z, w) tuples, like three.js stores them)
# ----------------------------------------------------------------------------------------------------------------------

EPSILON = 2.0 ** -52  # Number.EPSILON
# three.js r178 (the UI's version) tests antiparallel vectors against 1e-8 (mrdoob/three.js PR #31302, June 2025);
# r174 and earlier used Number.EPSILON.
OPPOSITE_EPSILON = 1e-8


def v3_apply_quaternion(v, q):
    """Vector3.applyQuaternion (q assumed unit): t = 2 cross(q.xyz, v); v + w t + cross(q.xyz, t)."""
    vx, vy, vz = v
    qx, qy, qz, qw = q
    tx = 2 * (qy * vz - qz * vy)
    ty = 2 * (qz * vx - qx * vz)
    tz = 2 * (qx * vy - qy * vx)
    return (vx + qw * tx + qy * tz - qz * ty,
            vy + qw * ty + qz * tx - qx * tz,
            vz + qw * tz + qx * ty - qy * tx)


def v3_add(a, b):
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def v3_sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def v3_normalize(v):
    """Vector3.normalize = divideScalar(length() || 1) = multiplyScalar(1 / len)."""
    length = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) or 1.0
    s = 1 / length
    return (v[0] * s, v[1] * s, v[2] * s)


def v3_lerp(a, b, alpha):
    """Vector3.lerp: a += (b - a) * alpha."""
    return (a[0] + (b[0] - a[0]) * alpha, a[1] + (b[1] - a[1]) * alpha, a[2] + (b[2] - a[2]) * alpha)


def q_normalize(q):
    """Quaternion.normalize: identity when the length is 0, else multiply by 1/length."""
    x, y, z, w = q
    length = math.sqrt(x * x + y * y + z * z + w * w)
    if length == 0:
        return (0.0, 0.0, 0.0, 1.0)
    s = 1 / length
    return (x * s, y * s, z * s, w * s)


def q_set_from_unit_vectors(v_from, v_to):
    """Quaternion.setFromUnitVectors (r178): r = from.to + 1; opposite branch when r < 1e-8; normalise."""
    r = v_from[0] * v_to[0] + v_from[1] * v_to[1] + v_from[2] * v_to[2] + 1
    if r < OPPOSITE_EPSILON:
        r = 0
        if abs(v_from[0]) > abs(v_from[2]):
            q = (-v_from[1], v_from[0], 0, r)
        else:
            q = (0, -v_from[2], v_from[1], r)
    else:
        q = (v_from[1] * v_to[2] - v_from[2] * v_to[1],
             v_from[2] * v_to[0] - v_from[0] * v_to[2],
             v_from[0] * v_to[1] - v_from[1] * v_to[0],
             r)
    return q_normalize(tuple(float(c) for c in q))


def q_slerp(qa, qb, t):
    """Quaternion.prototype.slerp (r17x): sign flip inside, copy at cos >= 1, normalised lerp when sin^2 <= EPSILON,
    else atan2-based slerp without a final normalisation."""
    if t == 0:
        return qa
    if t == 1:
        return qb
    x, y, z, w = qa
    bx, by, bz, bw = qb
    cos_half = w * bw + x * bx + y * by + z * bz
    if cos_half < 0:
        bx, by, bz, bw = -bx, -by, -bz, -bw
        cos_half = -cos_half
    if cos_half >= 1.0:
        return (x, y, z, w)
    sqr_sin_half = 1.0 - cos_half * cos_half
    if sqr_sin_half <= EPSILON:
        s = 1 - t
        return q_normalize((s * x + t * bx, s * y + t * by, s * z + t * bz, s * w + t * bw))
    sin_half = math.sqrt(sqr_sin_half)
    half = math.atan2(sin_half, cos_half)
    ratio_a = math.sin((1 - t) * half) / sin_half
    ratio_b = math.sin(t * half) / sin_half
    return (x * ratio_a + bx * ratio_b, y * ratio_a + by * ratio_b, z * ratio_a + bz * ratio_b,
            w * ratio_a + bw * ratio_b)


def wxyz(q):
    return [float(q[3]), float(q[0]), float(q[1]), float(q[2])]


def xyzw(q_wxyz):
    return (float(q_wxyz[1]), float(q_wxyz[2]), float(q_wxyz[3]), float(q_wxyz[0]))


# ----------------------------------------------------------------------------------------------------------------------
# service-and-ui §1.4: trajectory templates and the UI's interpolation (index.html L1553-1601, L1724-1904)
# ----------------------------------------------------------------------------------------------------------------------

STEP_SIZE = 0.5
ORBIT_ANGLE = 15 * math.pi / 180  # totalOrbitAngle, evaluated as (15 * PI) / 180
ORBIT_RADIUS = 1.0


def template_step(last, step):
    """One template press: returns the new keyframe (position tuple, quaternion xyzw tuple) from the last one."""
    pos, quat = last
    if step in ("forward", "backward", "left", "right"):
        x, y, z = pos
        if step == "forward":
            z -= STEP_SIZE
        elif step == "backward":
            z += STEP_SIZE
        elif step == "left":
            x -= STEP_SIZE
        else:
            x += STEP_SIZE
        return (x, y, z), quat
    if step in ("orbit-left", "orbit-right"):
        target = v3_add(pos, v3_apply_quaternion((0.0, 0.0, -1.0), quat))
        angle = -ORBIT_ANGLE if step == "orbit-left" else ORBIT_ANGLE
        local = (math.sin(angle) * ORBIT_RADIUS, 0.0, math.cos(angle) * ORBIT_RADIUS)
        position = v3_add(target, v3_apply_quaternion(local, quat))
        look = v3_normalize(v3_sub(target, position))
        return position, q_set_from_unit_vectors((0.0, 0.0, -1.0), look)
    raise ValueError(step)


def run_template(steps):
    keyframes = [((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))]  # "Fix Configuration": camera #0, origin, identity
    for step in steps:
        keyframes.append(template_step(keyframes[-1], step))
    return keyframes


def interpolate_two_cameras(start, end, t):
    if t < 1e-6:
        return start
    if t > 1 - 1e-6:
        return end
    return v3_lerp(start[0], end[0], t), q_slerp(start[1], end[1], t)


def interpolate_cameras(keyframes, m):
    """index.html interpolateCameras: t = i/(M-1), segment min(floor(t(K-1)), K-2), local t = t(K-1) - segment."""
    if len(keyframes) == 1:
        return [keyframes[0]] * m
    k = len(keyframes)
    out = []
    for i in range(m):
        t = i / (m - 1)
        start = min(math.floor(t * (k - 1)), k - 2)
        local_t = t * (k - 1) - start
        out.append(interpolate_two_cameras(keyframes[start], keyframes[start + 1], local_t))
    return out


def keyframe_json(kf):
    return {"position": [float(c) for c in kf[0]], "quaternion": wxyz(kf[1])}


# ----------------------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------------------

def axis_angle_quat(axis, degrees, scale=1.0):
    """Input helper: [w,x,y,z] for a rotation of `degrees` about `axis`, times `scale` (to make unnormalised q)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    half = math.radians(degrees) / 2
    return [scale * math.cos(half)] + [scale * math.sin(half) * float(c) for c in a]


def axis_angle_matrix(axis, degrees):
    """Input helper: Rodrigues rotation matrix (independent of quaternion_to_matrix)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    th = math.radians(degrees)
    kx = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(th) * kx + (1 - math.cos(th)) * (kx @ kx)


UI_FX_704x480 = ui_intrinsics(60.0, 704, 480)
UI_INTR_704x480 = [UI_FX_704x480[0] / 704, UI_FX_704x480[1] / 480, 0.5, 0.5]


def make_paths():
    path_a = [  # N=2, starts at the origin with identity rotation
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] + UI_INTR_704x480,
        axis_angle_quat([0.1, 1.0, 0.0], 20.0) + [0.3, -0.1, -0.8] + UI_INTR_704x480,
    ]
    path_b = [  # N=6, camera 0 off the origin and rotated; unnormalised q and negative w; per-camera intrinsics
        axis_angle_quat([0.2, 1.0, -0.3], 40.0, scale=2.5) + [1.2, -0.5, 3.0, 0.61, 0.88, 0.49, 0.52],
        axis_angle_quat([0.2, 1.0, -0.3], 55.0, scale=-0.7) + [1.0, -0.45, 2.6, 0.62, 0.89, 0.5, 0.51],
        axis_angle_quat([1.0, 0.4, 0.0], -30.0) + [0.7, -0.2, 2.2, 0.63, 0.9, 0.51, 0.5],
        axis_angle_quat([0.0, 0.0, 1.0], 170.0, scale=1.3) + [0.2, 0.1, 1.9, 0.64, 0.91, 0.5, 0.49],
        axis_angle_quat([0.5, -1.0, 0.25], 120.0, scale=-1.0) + [-0.4, 0.35, 1.5, 0.65, 0.92, 0.48, 0.5],
        axis_angle_quat([0.3, 0.3, 1.0], -75.0, scale=0.9) + [-1.1, 0.6, 1.0, 0.66, 0.93, 0.47, 0.53],
    ]
    path_c = []  # N=24, a UI-like arc: yaw 0..60 deg, a little pitch, moving forward and sideways
    for k in range(24):
        s = k / 23
        q_yaw = axis_angle_quat([0.0, 1.0, 0.0], 60.0 * s)
        q_pitch = axis_angle_quat([1.0, 0.0, 0.0], -8.0 * math.sin(math.pi * s))
        # Hamilton product yaw * pitch, computed here only to build an input.
        w1, x1, y1, z1 = q_yaw
        w2, x2, y2, z2 = q_pitch
        q = [w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
             w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2]
        if k % 5 == 3:
            q = [c * (1.0 + 0.05 * k) for c in q]  # a few unnormalised quaternions
        path_c.append(q + [-0.9 * s, 0.1 * math.sin(2 * math.pi * s), -2.0 * s] + UI_INTR_704x480)
    path_d = [  # N=2, pure rotation about a common centre: T_norm = 0, translations divided by 0.01
        axis_angle_quat([0.0, 1.0, 0.0], 10.0) + [0.25, 0.5, -1.0] + UI_INTR_704x480,
        axis_angle_quat([0.0, 1.0, 0.0], -35.0) + [0.25, 0.5, -1.0] + UI_INTR_704x480,
    ]
    return path_a, path_b, path_c, path_d


def unit(q):
    q = np.asarray(q, dtype=np.float64)
    return [float(c) for c in q / np.linalg.norm(q)]


def make_resample_inputs(path_c):
    n2 = [
        unit(axis_angle_quat([0.0, 1.0, 0.0], -10.0)) + [0.0, 0.0, 0.0, 0.59, 0.87, 0.5, 0.5],
        unit(axis_angle_quat([0.3, 1.0, 0.1], 70.0)) + [1.0, -0.2, -1.5, 0.7, 1.0, 0.45, 0.55],
    ]
    q1 = axis_angle_quat([0.0, 1.0, 0.0], 25.0)
    n5 = [
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] + UI_INTR_704x480,
        unit(q1) + [0.2, 0.0, -0.5] + UI_INTR_704x480,
        # same rotation as camera 1 written with the opposite sign: dot(a, b) < 0, so b is negated
        [-c for c in unit(axis_angle_quat([0.1, 1.0, 0.0], 50.0))] + [0.5, 0.1, -1.0] + UI_INTR_704x480,
        # identical quaternion to camera 2 (angle 0: the slerp returns a)
        [-c for c in unit(axis_angle_quat([0.1, 1.0, 0.0], 50.0))] + [0.9, 0.1, -1.2, 0.6, 0.88, 0.5, 0.5],
        unit(axis_angle_quat([1.0, 0.0, 0.2], 150.0)) + [1.4, 0.3, -1.0, 0.62, 0.9, 0.52, 0.48],
    ]
    # N=24 from the normalised UI-like arc (unit quaternions, all in one hemisphere).
    n24 = [unit(c[0:4]) + list(c[4:]) for c in path_c]
    n3 = [
        unit(axis_angle_quat([0.0, 0.0, 1.0], 0.0)) + [0.0, 0.0, 0.0, 0.5, 0.75, 0.5, 0.5],
        unit(axis_angle_quat([0.0, 1.0, 0.0], 179.0)) + [0.0, 0.0, -2.0, 0.55, 0.8, 0.5, 0.5],
        unit(axis_angle_quat([1.0, 1.0, 1.0], 90.0)) + [1.0, 1.0, -3.0, 0.6, 0.85, 0.45, 0.55],
    ]
    return [(n2, 24), (n5, 24), (n24, 24), (n3, 7)]


def r(x):
    """Plain Python floats (json writes repr, the shortest string that round-trips)."""
    return [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]


# ----------------------------------------------------------------------------------------------------------------------
# Build
# ----------------------------------------------------------------------------------------------------------------------

def build():
    data = {
        "generator": "tools/cameras/make_camera_fixtures.py",
        "spec": "flashworld-model.md §9, §11; service-and-ui.md §1.4",
        "notes": ("Quaternions are [w,x,y,z]; matrices row-major. resample[].t holds the exact parameters used "
                  "(t_k = k/(m-1) in float64). rays/raymap are flat (row, col, channel). three.js cases replay "
                  "three.js r17x operation order in float64."),
    }

    # 1. quaternion_to_matrix
    quats = [
        [1.0, 0.0, 0.0, 0.0],
        axis_angle_quat([0.0, 1.0, 0.0], 30.0),
        axis_angle_quat([1.0, -2.0, 0.5], 75.0, scale=3.0),       # unnormalised (|q| = 3)
        axis_angle_quat([0.3, 0.2, 1.0], 50.0, scale=0.25),       # unnormalised (|q| = 0.25)
        axis_angle_quat([0.6, -0.1, 0.4], 100.0, scale=-1.0),     # negative w (same rotation as -q)
        [0.0, 1.0, 0.0, 0.0],                                     # 180 deg about x
        [0.0, 0.0, 0.0, -2.0],                                    # 180 deg about z, unnormalised
        [0.0, 0.6, 0.0, 0.8],                                     # 180 deg about (0.6, 0, 0.8)
        [0.5, -0.5, 0.5, -0.5],                                   # 120 deg about (-1, 1, -1)
    ]
    data["quaternion_to_matrix"] = [{"q": r(q), "matrix": r(quaternion_to_matrix(q))} for q in quats]

    # 2. matrix_to_quaternion (inputs from Rodrigues, independent of quaternion_to_matrix)
    mats = [
        np.eye(3),
        axis_angle_matrix([0.2, 1.0, -0.4], 35.0),                # branch 0 (w largest)
        axis_angle_matrix([1.0, 0.05, -0.02], 179.0),             # branch 1 (x largest)
        axis_angle_matrix([1.0, 0.05, -0.02], -178.0),            # branch 1, candidate has w < 0 before the flip
        axis_angle_matrix([0.03, 1.0, 0.01], 178.5),              # branch 2 (y largest)
        axis_angle_matrix([-0.02, 0.04, 1.0], 179.5),             # branch 3 (z largest)
        axis_angle_matrix([0.0, 0.0, 1.0], -170.0),               # branch 3, w < 0 before the flip
        np.diag([-1.0, 1.0, -1.0]),                               # exactly 180 deg about y (w = 0)
        axis_angle_matrix([1.0, 2.0, 3.0], 120.0),
    ]
    cases = []
    for m in mats:
        q, branch = matrix_to_quaternion(m)
        cases.append({"matrix": r(m), "q": r(q), "branch": branch})
    data["matrix_to_quaternion"] = cases

    # 3. normalize_cameras
    paths = make_paths()
    cases = []
    for path in paths:
        normed, ref_w2c, t_norm = normalize_cameras(path)
        cases.append({"cameras": [r(c) for c in path], "normalized": [r(c) for c in normed],
                      "ref_w2c": r(ref_w2c), "t_norm": float(t_norm)})
    data["normalize_cameras"] = cases

    # 4. rays and raymaps
    ray_cams = [
        ([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] + UI_INTR_704x480, 3, 4),
        (axis_angle_quat([0.3, 1.0, 0.2], 35.0) + [0.5, -0.2, 1.5, 0.7, 1.1, 0.45, 0.55], 5, 7),
        (axis_angle_quat([-0.5, 0.2, 1.0], 140.0, scale=-1.7) + [-2.0, 3.0, 0.25, 0.9, 1.2, 0.52, 0.47], 6, 8),
    ]
    cases = []
    for cam, h, w in ray_cams:
        ro, rd, rm = create_raymap(cam, h, w)
        cases.append({"camera": r(cam), "h": h, "w": w, "rays_o": r(ro), "rays_d": r(rd), "raymap": r(rm)})
    data["rays"] = cases

    # 5. resample
    cases = []
    for dense, m in make_resample_inputs(paths[2]):
        ts = [k / (m - 1) for k in range(m)]
        cases.append({"cameras": [r(c) for c in dense], "m": m, "t": ts,
                      "resampled": [r(c) for c in sample_from_dense_cameras(dense, ts)]})
    data["resample"] = cases

    # 6. OpenCV conversion for the renderer
    cv_cams = [
        ([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] + UI_INTR_704x480, 704, 480),
        (axis_angle_quat([0.1, 1.0, 0.3], -65.0) + [0.4, -0.3, -1.2, 0.866, 0.59, 0.5, 0.5], 480, 704),
        (axis_angle_quat([1.0, -1.0, 0.5], 130.0, scale=2.0) + [-1.5, 0.75, 2.25, 0.8, 1.05, 0.46, 0.53], 100, 75),
        (axis_angle_quat([0.0, 0.0, 1.0], 10.0, scale=-1.0) + [3.0, 0.0, -4.0, 0.55, 0.8, 0.6, 0.4], 704, 480),
    ]
    cases = []
    for cam, wd, ht in cv_cams:
        viewmat, K = opencv_camera(cam, wd, ht)
        cases.append({"camera": r(cam), "width": wd, "height": ht, "viewmat": r(viewmat), "K": r(K)})
    data["opencv"] = cases

    # 7. API JSON -> 11-vector, and the UI's intrinsics
    api_cases = [
        ({"quaternion": [1, 0, 0, 0], "position": [0, 0, 0], "fx": UI_FX_704x480[0], "fy": UI_FX_704x480[1],
          "cx": 352, "cy": 240}, 704, 480),
        ({"quaternion": r(axis_angle_quat([0.0, 1.0, 0.0], -20.0)), "position": [0.1, -0.2, -0.5],
          "fx": ui_intrinsics(60.0, 480, 704)[0], "fy": ui_intrinsics(60.0, 480, 704)[1], "cx": 240, "cy": 352},
         480, 704),
        ({"quaternion": [0.9, 0.1, -0.3, 0.2], "position": [1.5, 2.5, -3.5], "fx": 500.25, "fy": 498.5,
          "cx": 360.5, "cy": 236.0}, 704, 480),
    ]
    data["api_json"] = [{"json": j, "width": wd, "height": ht, "vector": r(api_json_to_vector(j, wd, ht))}
                        for j, wd, ht in api_cases]
    ui_cases = [(60.0, 704, 480), (60.0, 480, 704), (45.0, 704, 480), (90.0, 704, 480), (120.0, 480, 704)]
    data["ui_intrinsics"] = []
    for fov, wd, ht in ui_cases:
        fx, fy, cx, cy = ui_intrinsics(fov, wd, ht)
        data["ui_intrinsics"].append({"fov_degrees": fov, "width": wd, "height": ht,
                                      "fx": fx, "fy": fy, "cx": cx, "cy": cy})

    # 8. templates and the UI's interpolation
    sequences = [
        ["orbit-left"],
        ["forward", "forward", "orbit-right", "left"],
        ["orbit-right", "orbit-right", "orbit-right", "backward"],
        ["right", "orbit-left", "orbit-left"],
        ["orbit-left", "orbit-right", "forward", "orbit-left"],
    ]
    data["templates"] = [{"steps": s, "keyframes": [keyframe_json(k) for k in run_template(s)]} for s in sequences]

    crafted = [  # exercises every branch of three.js slerp
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)),
        ((0.5, 0.0, -0.5), (0.0, 0.0, 0.0, 1.0)),                               # cos = 1: returns a
        ((1.0, 0.25, -1.0), (math.sqrt(1 - (1 - 2.0 ** -53) ** 2), 0.0, 0.0, 1 - 2.0 ** -53)),  # sin^2 <= EPSILON
        ((1.5, 0.0, -2.0), xyzw([-c for c in unit(axis_angle_quat([0.2, 1.0, 0.1], 60.0))])),  # cos < 0: flip
        ((2.0, -0.5, -2.5), xyzw(unit(axis_angle_quat([1.0, 0.0, 0.0], -40.0)))),
    ]
    ui_inputs = [run_template(["forward", "forward", "orbit-right", "left"]), crafted]
    data["ui_interpolation"] = [
        {"keyframes": [keyframe_json(k) for k in kfs], "m": 24,
         "cameras": [keyframe_json(c) for c in interpolate_cameras(kfs, 24)]}
        for kfs in ui_inputs]

    # three.js setFromUnitVectors on its own: both branches (the templates only reach the ordinary one)
    sfuv = [
        ((0.0, 0.0, -1.0), v3_normalize((0.3, -0.2, -1.0))),
        ((0.0, 0.0, -1.0), (0.0, 0.0, 1.0)),                       # opposite: r = 0, about y
        ((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0)),                       # opposite, |from.x| > |from.z| branch
        ((0.0, 0.0, -1.0), (1.4901161193847656e-08, 0.0, 0.9999999999999999)),  # r = 1.1e-16 < 1e-8: opposite
        ((0.0, 0.0, -1.0), v3_normalize((2e-4, 0.0, 1.0))),        # r = 2e-8 >= 1e-8: ordinary branch
    ]
    data["three_set_from_unit_vectors"] = [
        {"from": list(a), "to": list(b), "quaternion": wxyz(q_set_from_unit_vectors(a, b))} for a, b in sfuv]
    return data


# ----------------------------------------------------------------------------------------------------------------------
# Checks (run on every generation; they assert properties, not the values themselves)
# ----------------------------------------------------------------------------------------------------------------------

def close(a, b, tol=1e-12):
    return np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=tol, rtol=0)


def check(data):
    counts = {}

    def ok(cond, what):
        if not cond:
            raise AssertionError(what)

    for c in data["quaternion_to_matrix"]:
        m = np.array(c["matrix"]).reshape(3, 3)
        ok(close(m @ m.T, np.eye(3)) and abs(np.linalg.det(m) - 1) < 1e-12, f"q2m not a rotation {c['q']}")
        q = np.array(c["q"]) / np.linalg.norm(c["q"])
        v = np.array([0.3, -0.7, 0.2])  # compare with the Hamilton product q v q*
        w, u = q[0], q[1:]
        rotated = v + 2 * w * np.cross(u, v) + 2 * np.cross(u, np.cross(u, v))
        ok(close(m @ v, rotated), "q2m disagrees with q v q*")

    branches = set()
    for c in data["matrix_to_quaternion"]:
        m = np.array(c["matrix"]).reshape(3, 3)
        ok(close(quaternion_to_matrix(c["q"]), m, 1e-12), f"m2q round trip {c['q']}")
        ok(c["q"][0] >= 0 and abs(np.linalg.norm(c["q"]) - 1) < 1e-12, "m2q not unit with w >= 0")
        branches.add(c["branch"])
    ok(branches == {0, 1, 2, 3}, f"m2q branches covered: {branches}")

    for c in data["normalize_cameras"]:
        cams, normed = c["cameras"], c["normalized"]
        ok(close(normed[0][:7], [1, 0, 0, 0, 0, 0, 0]), "normalised camera 0 is not identity at the origin")
        ref = np.array(c["ref_w2c"]).reshape(4, 4)
        ok(close(ref @ c2w_matrix(cams[0]), np.eye(4)), "ref_w2c is not inverse(c2w_0)")
        r0 = quaternion_to_matrix(cams[0][:4])
        closed = np.eye(4)
        closed[:3, :3] = r0.T
        closed[:3, 3] = -r0.T @ np.array(cams[0][4:7])
        ok(close(ref, closed), "ref_w2c differs from the closed-form rigid inverse")
        scale = c["t_norm"] + 0.01
        ok(abs(max(np.linalg.norm(n[4:7]) for n in normed) - c["t_norm"] / scale) < 1e-12, "max |t| != T/(T+0.01)")
        for cam, n in zip(cams, normed):
            ok(close(quaternion_to_matrix(n[:4]), r0.T @ quaternion_to_matrix(cam[:4])), "R' != R0^T R")
            ok(close(np.array(n[4:7]) * scale, r0.T @ (np.array(cam[4:7]) - np.array(cams[0][4:7]))), "t' wrong")
            ok(n[7:] == cam[7:], "intrinsics changed")
            ok(n[0] >= 0 and abs(np.linalg.norm(n[:4]) - 1) < 1e-12, "normalised q not unit with w >= 0")

    for c in data["rays"]:
        h, w, cam = c["h"], c["w"], c["camera"]
        rd = np.array(c["rays_d"]).reshape(h, w, 3)
        ro = np.array(c["rays_o"]).reshape(h, w, 3)
        rm = np.array(c["raymap"]).reshape(h, w, 6)
        ok(close(np.linalg.norm(rd, axis=-1), 1.0), "ray directions not unit")
        ok(close(ro, np.broadcast_to(cam[4:7], ro.shape)), "ray origins are not the camera centre")
        ok(close(rm[..., :3], rd) and close(np.sum(rm[..., 3:] * rd, axis=-1), 0.0), "raymap moment not ⟂ d")
        # simplified form of the same direction: ((i - cx)/fx, -(j - cy)/fy, -1)
        R = quaternion_to_matrix(cam[:4])
        fx, fy, cx, cy = cam[7] * w, cam[8] * h, cam[9] * w, cam[10] * h
        for row in range(h):
            for col in range(w):
                d = R @ np.array([(col + 0.5 - cx) / fx, -(row + 0.5 - cy) / fy, -1.0])
                ok(close(rd[row, col], d / np.linalg.norm(d), 1e-14), "ray direction disagrees with simple form")
        # a point along the ray projects back to its pixel centre through the OpenCV camera of §9
        viewmat, K = opencv_camera(cam, w, h)
        for row, col in [(0, 0), (h - 1, w - 1), (h // 2, w // 3)]:
            p = np.append(ro[row, col] + 2.5 * rd[row, col], 1.0)
            pc = (viewmat @ p)[:3]
            ok(pc[2] > 0, "point behind the OpenCV camera")
            px = K @ (pc / pc[2])
            ok(close(px[:2], [col + 0.5, row + 0.5], 1e-9), "ray does not project to its pixel centre")

    for c in data["resample"]:
        dense, out = np.array(c["cameras"]), np.array(c["resampled"])
        ok(len(out) == c["m"], "resample count")
        # The last output is b of the last segment, which the reference negated if dot(a, b) < 0: same rotation,
        # opposite sign (a quirk kept in the fixture).
        last_sign = -1.0 if float(np.dot(dense[-2][:4], dense[-1][:4])) < 0 else 1.0
        for src, dst, sign in ((dense[0], out[0], 1.0), (dense[-1], out[-1], last_sign)):
            q = sign * src[:4] / np.linalg.norm(src[:4])
            ok(close(dst[:4], q, 1e-12) and close(dst[4:], src[4:], 1e-12), "resampled endpoint != input endpoint")
        ok(close(np.linalg.norm(out[:, :4], axis=1), 1.0), "resampled q not unit")
        ok(c["t"][0] == 0.0 and c["t"][-1] == 1.0, "t endpoints")

    for c in data["opencv"]:
        cam = c["camera"]
        vm = np.array(c["viewmat"]).reshape(4, 4)
        ok(close(vm[:3, :3] @ np.array(cam[4:7]) + vm[:3, 3], 0.0), "camera centre not at the view origin")
        ok(close(vm[:3, :3] @ vm[:3, :3].T, np.eye(3)), "view rotation not orthonormal")
        # the OpenGL viewing direction -z becomes OpenCV +z
        fwd = quaternion_to_matrix(cam[:4]) @ np.array([0.0, 0.0, -1.0])
        ok(close(vm[:3, :3] @ fwd, [0.0, 0.0, 1.0]), "forward is not +z in OpenCV")
        up = quaternion_to_matrix(cam[:4]) @ np.array([0.0, 1.0, 0.0])
        ok(close(vm[:3, :3] @ up, [0.0, -1.0, 0.0]), "up is not -y in OpenCV")

    for c in data["templates"]:
        kfs = c["keyframes"]
        ok(len(kfs) == len(c["steps"]) + 1 and kfs[0] == {"position": [0.0, 0.0, 0.0],
                                                          "quaternion": [1.0, 0.0, 0.0, 0.0]}, "camera #0")
        for step, prev, cur in zip(c["steps"], kfs, kfs[1:]):
            q_prev, q_cur = xyzw(prev["quaternion"]), xyzw(cur["quaternion"])
            ok(abs(np.linalg.norm(cur["quaternion"]) - 1) < 1e-12, "template q not unit")
            if step.startswith("orbit"):
                target = np.array(v3_add(prev["position"], v3_apply_quaternion((0, 0, -1), q_prev)))
                to_target = target - np.array(cur["position"])
                ok(abs(np.linalg.norm(to_target) - 1) < 1e-12, "orbit radius != 1")
                look = np.array(v3_apply_quaternion((0, 0, -1), q_cur))
                ok(close(look, to_target, 1e-12), "orbit camera does not look at the target")
                # independent check of the orbit angle: 15 degrees between the old and new viewing directions
                old = np.array(v3_apply_quaternion((0, 0, -1), q_prev))
                ok(abs(math.degrees(math.acos(np.clip(old @ look, -1, 1))) - 15) < 1e-9, "orbit angle != 15 deg")
            else:
                delta = {"forward": [0, 0, -0.5], "backward": [0, 0, 0.5], "left": [-0.5, 0, 0], "right": [0.5, 0, 0]}
                ok(close(np.array(cur["position"]) - prev["position"], delta[step], 1e-15), "move step")
                ok(cur["quaternion"] == prev["quaternion"], "move changed the rotation")

    for c in data["ui_interpolation"]:
        kfs, cams = c["keyframes"], c["cameras"]
        ok(cams[0] == kfs[0] and cams[-1] == kfs[-1], "UI interpolation endpoints")
        ok(close([np.linalg.norm(x["quaternion"]) for x in cams], 1.0, 1e-12), "UI interpolated q not unit")
        # agree (as rotations) with the reference slerp on the same segments, to show the two schemes match
        k, m = len(kfs), c["m"]
        for i, cam in enumerate(cams):
            t = i / (m - 1)
            s = min(math.floor(t * (k - 1)), k - 2)
            lt = t * (k - 1) - s
            a, b = np.array(kfs[s]["quaternion"]), np.array(kfs[s + 1]["quaternion"])
            if a @ b < 0:
                b = -b
            ref = reference_slerp(a / np.linalg.norm(a), b / np.linalg.norm(b), lt)
            ref = ref / np.linalg.norm(ref)
            ok(close(quaternion_to_matrix(cam["quaternion"]), quaternion_to_matrix(ref), 1e-7), "UI vs ref slerp")

    for c in data["three_set_from_unit_vectors"]:
        q = xyzw(c["quaternion"])
        ok(close(v3_apply_quaternion(c["from"], q), c["to"], 1e-7), "setFromUnitVectors does not map from -> to")

    for key, value in data.items():
        if isinstance(value, list):
            counts[key] = len(value)
    return counts


def to_json(value, indent=0):
    """JSON with one key per line, but lists of scalars (and lists of such lists) kept on one line."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {to_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value) \
            and not all(isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v) for v in value):
        return "[\n" + ",\n".join(inner + to_json(v, indent + 1) for v in value) + "\n" + pad + "]"
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return "[\n" + ",\n".join(inner + json.dumps(v, allow_nan=False) for v in value) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def main():
    data = build()
    counts = check(data)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    text = to_json(data) + "\n"
    if json.loads(text) != data:
        raise AssertionError("JSON does not round-trip")
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text.encode('utf-8'))} bytes)")
    for key, n in counts.items():
        print(f"  {key}: {n} cases")


if __name__ == "__main__":
    main()
