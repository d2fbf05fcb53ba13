# SPDX-License-Identifier: GPL-3.0-or-later
"""GLSL of the GPU splat drawer, built with ``gpu.types.GPUShaderCreateInfo`` (so it compiles on
every backend Blender runs: OpenGL, Metal, Vulkan).

Three programs:

* **splat** (instanced quads, one per splat): the vertex stage projects splat ``order[i]`` exactly
  as :func:`anchorstage.projection.project` does (EWA with the Jacobian's x/z, y/z clamped to 1.3×
  the half field of view, the 0.3 px² low-pass, culling by the clip range, by opacity < 1/255, by a
  degenerate 2D covariance and by the opacity-tightened box off screen) and sizes the quad to the
  ellipse ``sigma <= ln(255 · opacity)``; the fragment stage evaluates
  ``alpha = min(0.99, opacity · exp(-sigma))``, drops ``alpha < 1/255`` and writes premultiplied
  ``(value · alpha, alpha)`` and ``(z · alpha, alpha)`` into two float targets. Drawn back to
  front with premultiplied *over* blending, the targets hold the renderer's sums Σ wᵢ·vᵢ, Σ wᵢ·zᵢ
  and alpha = 1 − Π(1 − αᵢ) (the renderer's stop at transmittance 1e-4 changes a pixel by < 1e-4).
  For the region pass a variant writes each splat's alpha into the slot of its region class
  instead (:data:`CLASS_SLOTS` per draw; more classes take more draws), so the targets hold each
  region's summed weight Σ_{i ∈ r} wᵢ, and **region_reduce** keeps, per pixel, the class with the
  largest weight (the background counting for class 0 with 1 − alpha, ties to the lower class):
  the renderer's region rule, never blended.
* **finish** (one full-screen quad): turns those sums into the pass shown (colour, the depth ramp,
  normals, confidence, the region colours, the void mask) and writes the alpha-normalised depth
  Σ wᵢ·zᵢ / alpha as the fragment depth, so Blender geometry in the target's depth buffer hides the
  splats behind it.
* **sort** (compute): view depths of a splat set into an RGBA32F image (depth, index), and one
  bitonic merge step per dispatch, ordering farthest first with ties in descending index (the CPU
  sorter's order, :func:`anchorstage.splat_sort.back_to_front`).

Pixel frame: window pixels with y up (``gl_FragCoord``), pixel centres at +0.5, like the core's
pixels with y flipped; the projection matrix is Blender's (OpenGL clip space).
"""

from __future__ import annotations

__all__ = ["KIND_CODES", "SORT_GROUP_SIZE", "CLASS_TARGETS", "CLASS_SLOTS", "splat_shader", "splat_view_block",
           "region_reduce_shader", "finish_shader", "sort_shaders", "quad_batch"]

#: Display kinds of :func:`anchorstage.viewport_layout.display_kind` as the finish shader's codes.
KIND_CODES = {"srgb": 0, "depth": 1, "normal": 2, "unit": 3, "ids": 4, "void": 5}
#: Invocations per compute work group of the sort.
SORT_GROUP_SIZE = 256
#: Region classes per draw: RGBA targets of 3 class weights each (alpha stays the splat's alpha,
#: which premultiplied blending needs).
CLASS_TARGETS = 4
CLASS_SLOTS = 3 * CLASS_TARGETS

_COMMON = """
#define ALPHA_MIN (1.0 / 255.0)
#define ALPHA_MAX 0.99
#define EPS2D 0.3
ivec2 texel_of(int i, int width) { return ivec2(i % width, i / width); }
"""

#: The splat program's per-draw constants, one uniform block (std140; too many for push constants).
_SPLAT_VIEW_STRUCT = """
struct SplatView {
  mat4 model;             /* object -> world */
  mat4 view;              /* world -> view (looks down -Z) */
  mat4 proj;              /* view -> clip */
  vec4 tan_limits;        /* x/z below, above; y/z below, above */
  vec4 camera_position;   /* world xyz */
  vec4 focal_viewport;    /* fx, fy (pixels), width, height */
  vec4 clip_range;        /* near, far view depth */
  ivec4 order_data;       /* order texture width, its component, data texture width, splat count */
  ivec4 flags;            /* perspective, value is a normal, first class slot of this draw */
};
"""

_SPLAT_VERT = _COMMON + """
void main()
{
  mat4 modelMatrix = sv.model;
  mat4 viewMatrix = sv.view;
  mat4 projMatrix = sv.proj;
  vec4 tanLimits = sv.tan_limits;
  vec3 cameraPosition = sv.camera_position.xyz;
  vec2 focal = sv.focal_viewport.xy;
  vec2 viewportSize = sv.focal_viewport.zw;
  vec2 clipRange = sv.clip_range.xy;
  int orderWidth = sv.order_data.x;
  int orderComponent = sv.order_data.y;
  int dataWidth = sv.order_data.z;
  int splatCount = sv.order_data.w;
  int isPerspective = sv.flags.x;
  int valueIsNormal = sv.flags.y;
  int classOffset = sv.flags.z;

  vec4 culled = vec4(0.0, 0.0, 2.0, 1.0);  /* outside the clip volume: the quad is dropped */
  gl_Position = culled;
  vCentre = vec4(0.0);
  vConic = vec4(0.0);
  vValue = vec4(0.0);
  vec4 ord = texelFetch(orderTex, texel_of(gl_InstanceID, orderWidth), 0);
  int idx = int((orderComponent == 0 ? ord.r : ord.g) + 0.5);
  if (idx < 0 || idx >= splatCount) {
    return;
  }
  ivec2 uv = texel_of(idx, dataWidth);
  vec4 co = texelFetch(centerTex, uv, 0);
  vec4 ca = texelFetch(covATex, uv, 0);
  vec4 cb = texelFetch(covBTex, uv, 0);
  float opacity = co.w;

  vec4 pw = modelMatrix * vec4(co.xyz, 1.0);
  vec4 pv = viewMatrix * pw;
  float z = -pv.z; /* view depth, the core's OpenCV z */
  if (z < clipRange.x || z > clipRange.y || opacity < ALPHA_MIN) {
    return;
  }
  /* World covariance of the (rigidly moved, uniformly scaled) object-space Gaussian. */
  mat3 S = mat3(ca.x, ca.y, ca.z, ca.y, ca.w, cb.x, ca.z, cb.x, cb.y);
  mat3 A = mat3(modelMatrix);
  mat3 Sw = A * S * transpose(A);
  /* Rows of world -> camera with x right, y up (window pixels), z forward. */
  mat3 V = mat3(viewMatrix);
  vec3 r0 = vec3(V[0][0], V[1][0], V[2][0]);
  vec3 r1 = vec3(V[0][1], V[1][1], V[2][1]);
  vec3 r2 = -vec3(V[0][2], V[1][2], V[2][2]);
  vec3 a0, a1;
  if (isPerspective != 0) {
    float tx = clamp(pv.x / z, -tanLimits.x, tanLimits.y);
    float ty = clamp(pv.y / z, -tanLimits.z, tanLimits.w);
    a0 = (focal.x / z) * (r0 - tx * r2);
    a1 = (focal.y / z) * (r1 - ty * r2);
  }
  else {
    a0 = focal.x * r0;
    a1 = focal.y * r1;
  }
  vec3 s0 = Sw * a0;
  vec3 s1 = Sw * a1;
  float cxx = dot(a0, s0) + EPS2D;
  float cxy = dot(a0, s1);
  float cyy = dot(a1, s1) + EPS2D;
  float det = cxx * cyy - cxy * cxy;
  if (!(det > 0.0)) {
    return;
  }
  vec4 clip = projMatrix * pv;
  vec2 centre = (clip.xy / clip.w * 0.5 + 0.5) * viewportSize;
  float extent = sqrt(2.0 * log(opacity / ALPHA_MIN));
  vec2 box = ceil(min(extent, 3.33) * sqrt(vec2(cxx, cyy)));
  if (any(lessThanEqual(centre + box, vec2(0.0))) || any(greaterThanEqual(centre - box, viewportSize))) {
    return;
  }
  /* The quad covers every pixel with alpha >= 1/255: sigma <= ln(255 opacity). */
  vec2 radius = ceil(extent * sqrt(vec2(cxx, cyy)));
  vec2 ndc_offset = corner * radius / viewportSize * 2.0;
  gl_Position = vec4(clip.xy + ndc_offset * clip.w, clip.z, clip.w);
  vCentre = vec4(centre, opacity, z);
  vConic = vec4(cyy / det, -cxy / det, cxx / det, 0.0);
  vec4 value = texelFetch(valueTex, texel_of(idx, dataWidth), 0);
  if (valueIsNormal != 0) {
    /* The registry's normal: the thinnest axis, turned to face this view's camera. */
    vec3 n = normalize(A * value.xyz);
    if (dot(cameraPosition - pw.xyz, n) < 0.0) {
      n = -n;
    }
    value.xyz = n;
  }
#ifdef CLASS_SLOTS
  value.x -= float(classOffset); /* this draw's slot of the splat's region class */
#endif
  vValue = value;
}
"""

_SPLAT_FRAG = _COMMON + """
void main()
{
  vec2 d = gl_FragCoord.xy - vCentre.xy;
  float sigma = 0.5 * (vConic.x * d.x * d.x + vConic.z * d.y * d.y) + vConic.y * d.x * d.y;
  if (sigma < 0.0) {
    discard;
  }
  float alpha = min(ALPHA_MAX, vCentre.z * exp(-sigma));
  if (alpha < ALPHA_MIN) {
    discard;
  }
#ifdef CLASS_SLOTS
  /* No arrays or dynamic component indexing: they do not translate to every backend. */
  int slot = int(floor(vValue.x + 0.5));
  vec3 onehot = vec3(equal(ivec3(slot % 3), ivec3(0, 1, 2))) * alpha;
  int target = slot >= 0 && slot < CLASS_SLOTS ? slot / 3 : -1;
  outSlots0 = vec4(target == 0 ? onehot : vec3(0.0), alpha);
  outSlots1 = vec4(target == 1 ? onehot : vec3(0.0), alpha);
  outSlots2 = vec4(target == 2 ? onehot : vec3(0.0), alpha);
  outSlots3 = vec4(target == 3 ? onehot : vec3(0.0), alpha);
#else
  outValue = vec4(vValue.rgb * alpha, alpha);
#endif
  outDepth = vec4(vCentre.w * alpha, alpha, 0.0, alpha);
}
"""

_REDUCE_FRAG = """
void main()
{
  ivec2 p = ivec2(uvInterp * vec2(textureSize(depthTex, 0)));
  float alpha = texelFetch(depthTex, p, 0).g;
  vec2 best = classOffset == 0 ? vec2(-1.0, 0.0) : texelFetch(bestTex, p, 0).rg;
  for (int k = 0; k < CLASS_SLOTS; k++) {
    int cls = classOffset + k;
    if (cls >= classCount) {
      break;
    }
    int t = k / 3;
    vec4 w = t == 0 ? texelFetch(slots0, p, 0) :
             (t == 1 ? texelFetch(slots1, p, 0) : (t == 2 ? texelFetch(slots2, p, 0) : texelFetch(slots3, p, 0)));
    float v = dot(w.rgb, vec3(equal(ivec3(k % 3), ivec3(0, 1, 2))));
    if (cls == 0) {
      v += max(1.0 - alpha, 0.0); /* the background counts for class 0 (no region) */
    }
    if (v > best.x) { /* strictly: ties stay with the lower class */
      best = vec2(v, float(cls));
    }
  }
  fragBest = vec4(best, 0.0, 1.0);
}
"""

_FINISH_VERT = """
void main()
{
  uvInterp = pos * 0.5 + 0.5;
  gl_Position = vec4(pos, 0.0, 1.0);
}
"""

_FINISH_FRAG = """
#define EMPTY_ALPHA (0.5 / 255.0)
vec3 linear_to_srgb(vec3 c)
{
  c = clamp(c, 0.0, 1.0);
  return mix(c * 12.92, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(vec3(0.0031308), c));
}
vec3 srgb_to_linear(vec3 c)
{
  c = max(c, vec3(0.0));
  return mix(c / 12.92, pow((c + 0.055) / 1.055, vec3(2.4)), step(vec3(0.04045), c));
}
/* The contact sheet's log-depth ramp (anchorstage.preview.colorize_depth): near bright, far dark. */
vec3 depth_ramp(float depth)
{
  float lo = max(depthRange.x, 1e-6);
  float hi = max(depthRange.y, lo * 1.0001);
  float t = clamp((log(hi) - log(max(depth, 1e-6))) / max(log(hi) - log(lo), 1e-9), 0.0, 1.0);
  float x = t * 4.0;
  if (x < 1.0) {
    return mix(vec3(0.0, 0.0, 0.02), vec3(0.3, 0.06, 0.45), x);
  }
  if (x < 2.0) {
    return mix(vec3(0.3, 0.06, 0.45), vec3(0.75, 0.2, 0.45), x - 1.0);
  }
  if (x < 3.0) {
    return mix(vec3(0.75, 0.2, 0.45), vec3(0.99, 0.55, 0.25), x - 2.0);
  }
  return mix(vec3(0.99, 0.55, 0.25), vec3(0.99, 0.98, 0.6), min(x - 3.0, 1.0));
}
void main()
{
  ivec2 p = ivec2(uvInterp * vec2(textureSize(valueTex, 0)));
  vec4 acc = texelFetch(valueTex, p, 0);
  float alpha = acc.a;
  vec2 depth_acc = texelFetch(depthTex, p, 0).rg; /* full-float sum of w z, and alpha again */
  bool empty = alpha < EMPTY_ALPHA;
  if (empty && displayKind != 5) {
    discard;
  }
  float depth = depth_acc.x / max(depth_acc.y, 1e-10);
  vec4 shown; /* premultiplied; scene-linear for colour, display-referred otherwise */
  bool linear = false;
  if (displayKind == 0) {
    shown = acc;
    linear = true;
  }
  else if (displayKind == 1) {
    shown = vec4(depth_ramp(depth) * alpha, alpha);
  }
  else if (displayKind == 2) {
    vec3 n = acc.rgb / max(length(acc.rgb), 1e-12);
    shown = vec4((n * 0.5 + 0.5) * alpha, alpha);
  }
  else if (displayKind == 3) {
    shown = vec4(vec3(clamp(acc.r, 0.0, 1.0)), alpha);
  }
  else if (displayKind == 4) {
    /* The dominant region's colour, never blended (class 0: no region, black). */
    int cls = int(texelFetch(regionTex, p, 0).g + 0.5);
    shown = cls == 0 ? vec4(0.0, 0.0, 0.0, alpha) : vec4(texelFetch(paletteTex, ivec2(cls, 0), 0).rgb, 1.0);
  }
  else {
    /* Void: the colour view, with pixels below the void threshold painted over. */
    vec3 col = alpha > 0.0 ? linear_to_srgb(acc.rgb / alpha) * alpha : vec3(0.0);
    float v = alpha < voidThreshold ? 1.0 : 0.0;
    shown = mix(vec4(col, alpha), vec4(voidColor.rgb, 1.0), v * voidColor.a);
  }
  if (displayTarget != 0) {
    /* Display-referred out (Standard view transform): sRGB-encode colour; an sRGB framebuffer
     * encodes on write, so it gets linear values back. */
    if (linear) {
      shown.rgb = shown.a > 0.0 ? linear_to_srgb(shown.rgb / shown.a) * shown.a : vec3(0.0);
    }
    if (srgbTarget && shown.a > 0.0) {
      shown.rgb = srgb_to_linear(shown.rgb / shown.a) * shown.a;
    }
  }
  fragColor = shown;
  if (empty) {
    gl_FragDepth = 1.0;
  }
  else if (isPerspective != 0) {
    gl_FragDepth = clamp(0.5 * (depthFromView.x * -depth + depthFromView.y) / depth + 0.5, 0.0, 1.0);
  }
  else {
    gl_FragDepth = clamp(0.5 * (depthFromView.x * -depth + depthFromView.y) + 0.5, 0.0, 1.0);
  }
}
"""

_SORT_KEYS = _COMMON + """
void main()
{
  int i = int(gl_GlobalInvocationID.x);
  if (i >= paddedCount) {
    return;
  }
  vec2 key = vec2(-3.0e38, -1.0); /* padding sorts last */
  if (i < splatCount) {
    vec3 c = texelFetch(centerTex, texel_of(i, dataWidth), 0).xyz;
    key = vec2(dot(depthRow.xyz, c) + depthRow.w, float(i));
  }
  imageStore(keys, texel_of(i, keyWidth), vec4(key, 0.0, 0.0));
}
"""

_SORT_STEP = _COMMON + """
void main()
{
  int i = int(gl_GlobalInvocationID.x);
  int l = i ^ stepJ;
  if (i >= paddedCount || l <= i) {
    return;
  }
  ivec2 pi = texel_of(i, keyWidth);
  ivec2 pl = texel_of(l, keyWidth);
  vec4 a = imageLoad(keys, pi);
  vec4 b = imageLoad(keys, pl);
  /* a comes first: farther, or as far with the larger index. */
  bool a_first = a.x > b.x || (a.x == b.x && a.y > b.y);
  bool up = (i & stepK) == 0;
  if (up != a_first) {
    imageStore(keys, pi, b);
    imageStore(keys, pl, a);
  }
}
"""

_CACHE: dict = {}


def _create(info):
    import gpu

    return gpu.shader.create_from_info(info)


def splat_shader(classes: bool = False):
    """The instanced-quad splat program (compiled once per Blender session); ``classes``: the
    region-class variant with :data:`CLASS_TARGETS` weight targets."""
    name = "splat_classes" if classes else "splat"
    if name in _CACHE:
        return _CACHE[name]
    import gpu

    iface = gpu.types.GPUStageInterfaceInfo("anchorstage_splat_iface")
    iface.flat("VEC4", "vCentre")   # window x, y (y up), opacity, view depth
    iface.flat("VEC4", "vConic")    # inverse 2D covariance a, b, c
    iface.flat("VEC4", "vValue")    # the pass's per-splat value
    info = gpu.types.GPUShaderCreateInfo()
    info.vertex_in(0, "VEC2", "corner")
    info.vertex_out(iface)
    for slot, sampler in enumerate(("orderTex", "centerTex", "covATex", "covBTex", "valueTex")):
        info.sampler(slot, "FLOAT_2D", sampler)
    info.typedef_source(_SPLAT_VIEW_STRUCT)
    info.uniform_buf(0, "SplatView", "sv")
    if classes:
        info.define("CLASS_SLOTS", str(CLASS_SLOTS))
        for t in range(CLASS_TARGETS):
            info.fragment_out(t, "VEC4", f"outSlots{t}")
        info.fragment_out(CLASS_TARGETS, "VEC4", "outDepth")
    else:
        info.fragment_out(0, "VEC4", "outValue")
        info.fragment_out(1, "VEC4", "outDepth")
    info.vertex_source(_SPLAT_VERT)
    info.fragment_source(_SPLAT_FRAG)
    _CACHE[name] = _create(info)
    return _CACHE[name]


def splat_view_block(model, view, proj, tan_limits, camera_position, focal, viewport, clip_range, order_width: int,
                     order_component: int, data_width: int, splat_count: int, perspective: bool,
                     value_is_normal: bool, class_offset: int = 0) -> bytes:
    """The ``SplatView`` block's bytes (std140: matrices column by column, then vec4s, then ivec4s)."""
    import numpy as np

    floats = np.concatenate([np.asarray(m, dtype=np.float32).T.ravel() for m in (model, view, proj)]
                            + [np.asarray(list(v) + [0.0] * (4 - len(v)), dtype=np.float32)
                               for v in (tan_limits, camera_position, tuple(focal) + tuple(viewport), clip_range)])
    ints = np.array([order_width, order_component, data_width, splat_count, int(perspective), int(value_is_normal),
                     class_offset, 0], dtype=np.int32)
    return floats.tobytes() + ints.tobytes()


def region_reduce_shader():
    """The full-screen program that keeps each pixel's heaviest region class over the class draws."""
    if "reduce" in _CACHE:
        return _CACHE["reduce"]
    import gpu

    iface = gpu.types.GPUStageInterfaceInfo("anchorstage_reduce_iface")
    iface.smooth("VEC2", "uvInterp")
    info = gpu.types.GPUShaderCreateInfo()
    info.vertex_in(0, "VEC2", "pos")
    info.vertex_out(iface)
    info.define("CLASS_SLOTS", str(CLASS_SLOTS))
    for t in range(CLASS_TARGETS):
        info.sampler(t, "FLOAT_2D", f"slots{t}")
    info.sampler(CLASS_TARGETS, "FLOAT_2D", "depthTex")
    info.sampler(CLASS_TARGETS + 1, "FLOAT_2D", "bestTex")
    info.push_constant("INT", "classOffset")
    info.push_constant("INT", "classCount")
    info.fragment_out(0, "VEC4", "fragBest")
    info.vertex_source(_FINISH_VERT)
    info.fragment_source(_REDUCE_FRAG)
    _CACHE["reduce"] = _create(info)
    return _CACHE["reduce"]


def finish_shader():
    """The full-screen program that turns the accumulated sums into the pass shown."""
    if "finish" in _CACHE:
        return _CACHE["finish"]
    import gpu

    iface = gpu.types.GPUStageInterfaceInfo("anchorstage_finish_iface")
    iface.smooth("VEC2", "uvInterp")
    info = gpu.types.GPUShaderCreateInfo()
    info.vertex_in(0, "VEC2", "pos")
    info.vertex_out(iface)
    info.sampler(0, "FLOAT_2D", "valueTex")
    info.sampler(1, "FLOAT_2D", "depthTex")
    info.sampler(2, "FLOAT_2D", "regionTex")    # the region reduce's (weight, class)
    info.sampler(3, "FLOAT_2D", "paletteTex")   # display colour per region class
    info.push_constant("VEC4", "voidColor")      # display RGB and how strongly it covers
    info.push_constant("VEC2", "depthRange")     # metres, the depth ramp's near and far
    info.push_constant("VEC2", "depthFromView")  # projection entries [2][2], [2][3]
    info.push_constant("FLOAT", "voidThreshold")
    info.push_constant("INT", "displayKind")
    info.push_constant("INT", "displayTarget")   # 0: linear values, 1: display (viewport overlay)
    info.push_constant("INT", "isPerspective")
    info.push_constant("BOOL", "srgbTarget")     # set by Blender for the bound framebuffer
    info.fragment_out(0, "VEC4", "fragColor")
    if hasattr(info, "depth_write"):  # Blender 4.3+; 4.2 writes gl_FragDepth without declaring it
        info.depth_write("ANY")
    info.vertex_source(_FINISH_VERT)
    info.fragment_source(_FINISH_FRAG)
    _CACHE["finish"] = _create(info)
    return _CACHE["finish"]


def sort_shaders():
    """(keys, step) compute programs of the GPU bitonic sort."""
    if "sort" in _CACHE:
        return _CACHE["sort"]
    import gpu

    keys = gpu.types.GPUShaderCreateInfo()
    keys.local_group_size(SORT_GROUP_SIZE, 1, 1)
    keys.sampler(0, "FLOAT_2D", "centerTex")
    # RGBA32F: read-write images of two channels are not available on every backend (Metal tier 2).
    keys.image(0, "RGBA32F", "FLOAT_2D", "keys", qualifiers={"WRITE"})
    keys.push_constant("VEC4", "depthRow")  # object -> view depth: dot(row.xyz, p) + row.w
    keys.push_constant("INT", "splatCount")
    keys.push_constant("INT", "paddedCount")
    keys.push_constant("INT", "dataWidth")
    keys.push_constant("INT", "keyWidth")
    keys.compute_source(_SORT_KEYS)
    step = gpu.types.GPUShaderCreateInfo()
    step.local_group_size(SORT_GROUP_SIZE, 1, 1)
    step.image(0, "RGBA32F", "FLOAT_2D", "keys", qualifiers={"READ", "WRITE"})
    step.push_constant("INT", "stepJ")
    step.push_constant("INT", "stepK")
    step.push_constant("INT", "paddedCount")
    step.push_constant("INT", "keyWidth")
    step.compute_source(_SORT_STEP)
    _CACHE["sort"] = (_create(keys), _create(step))
    return _CACHE["sort"]


def quad_batch(name: str):
    """A 4-vertex triangle strip over [-1, 1]² with attribute ``name`` (the splat quad's corners,
    or the full-screen quad)."""
    import gpu

    fmt = gpu.types.GPUVertFormat()
    fmt.attr_add(id=name, comp_type="F32", len=2, fetch_mode="FLOAT")
    vbo = gpu.types.GPUVertBuf(fmt, 4)
    vbo.attr_fill(name, ((-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)))
    return gpu.types.GPUBatch(type="TRI_STRIP", buf=vbo)
