"""Mutation check for the tests issues 11, 12, 23, 24, 25 and 26 wrote: each one must fail when the code it guards breaks.

Issue 11 replaced tests that depended on the machine's speed, or could not fail at all, with tests
that state the behaviour. A test that passes is only half the evidence; this script gives the other
half. For every mutation below (one realistic bug, one textual replacement in one file) it

  1. runs the guarding test(s) on an unmodified copy of the working tree (they must pass there,
     so a test that fails anyway is never counted as catching anything),
  2. applies the mutation to a fresh copy and runs the same test(s) again: a non-zero pytest exit
     is "caught" (with the first failing assertion line), a pass is "MISSED".

The copies hold `git ls-files -co --exclude-standard` (tracked plus untracked, non-ignored files),
and PYTHONPATH points at the copy, so both the tests and the processes they start (the ROS node)
import the mutated code. The repository itself is never modified.

    python scripts/mutation_check.py              # everything (~5 min on an idle 2-core CPU)
    python scripts/mutation_check.py --list
    python scripts/mutation_check.py --only adam_betas --only flow_not_scaled

Exit status 0 only if every baseline passed and every mutation was caught.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_TIMEOUT_S = 600  # one pytest run; a mutated run that hangs this long counts as caught


@dataclass
class Mutation:
    name: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest node ids that must fail with the mutation
    why: str  # the bug, in one line


HOSTILE = "tests/test_hostile_inputs.py"
BAGS = "tests/test_bags.py"
DEMO = "tests/test_demo.py"
ROS_HOSTILE = "tests/test_ros_hostile.py"
ROS_LIVE = ("tests/test_ros_node.py::"
            "test_live_mode_behind_a_busy_model_keeps_the_newest_frame_and_sigint_mid_frame_is_clean",)

MUTATIONS = [
    # -- 4f29dfa: live mode through the real node with a gated model --------------------------------
    Mutation(
        "live_two_pending", "ros2_ws/src/svs_gan_ros/svs_gan_ros/engine.py",
        "            if cam.queue:\n                older = cam.queue.pop()",
        "            if len(cam.queue) >= 2:\n                older = cam.queue.pop()",
        ROS_LIVE, "live mode lets two frames wait behind the model instead of only the newest one"),
    Mutation(
        "live_keeps_oldest", "ros2_ws/src/svs_gan_ros/svs_gan_ros/engine.py",
        "            if cam.queue:\n"
        "                older = cam.queue.pop()\n"
        "                cam.queued_bytes -= older.size\n"
        "                frame.inherit(older)\n"
        "                cam.stats.dropped_live += 1\n",
        "            if cam.queue:  # keep the frame that already waits, drop the new one\n"
        "                cam.stats.dropped_live += 1\n"
        "                return\n",
        ROS_LIVE, "live mode keeps the oldest waiting frame and drops new ones, so it publishes stale frames"),
    Mutation(
        "sigint_not_clean", "ros2_ws/src/svs_gan_ros/svs_gan_ros/generator_node.py",
        "    except (KeyboardInterrupt, ExternalShutdownException):\n        pass",
        "    except ExternalShutdownException:\n        pass",
        ROS_LIVE, "main handles only rclpy's ExternalShutdownException; Ctrl-C's KeyboardInterrupt escapes it"),
    # -- f09cc6a: the CARLA sensor wait uses the configured timeout ----------------------------------
    Mutation(
        "carla_fixed_timeout", "svsgan_core/io/carla_client.py",
        "                item = self.semantic.take(frame, timeout)",
        "                item = self.semantic.take(frame, 10.0)",
        ("tests/test_carla.py::test_camera_silence_is_an_error_within_the_timeout[True]",),
        "the sync-mode sensor wait uses a hard-coded 10 s (the default) instead of the configured --timeout"),
    # -- 78f8b05: memory checks as an RSS slope --------------------------------------------------------
    Mutation(
        "stream_leak", "svsgan_core/runtime/synthesizer.py",
        "                s.prev_image = images[j:j + 1]\n",
        "                s.prev_image = images[j:j + 1]\n"
        "                s.__dict__.setdefault('history', []).append(s.prev_image)  # for debugging; never cleared\n",
        ("tests/test_inference.py::test_two_thousand_frame_stream_stays_finite_with_flat_memory",),
        "VideoSynthesizer keeps every generated frame of a stream in a list (one frame's state per step)"),
    Mutation(
        "onnx_leak", "svsgan_core/runtime/synthesizer.py",
        '        return torch.from_numpy(self.session.run(["image"], feeds)[0])',
        '        out = self.session.run(["image"], feeds)[0]\n'
        "        self.__dict__.setdefault('_outputs', []).append(out)  # meant as a one-slot cache\n"
        "        return torch.from_numpy(out)",
        ("tests/test_export.py::test_onnx_stream_memory_stays_flat",),
        "OnnxSynthesizer keeps every output onnxruntime returned (a list instead of a one-slot cache)"),
    # -- fc5c6e0: exact Adam updates, Section 4.1's schedule, the trainer applies it -------------------
    Mutation(
        "adam_betas", "svsgan_core/train/trainer.py",
        "        betas = tuple(opts.optim.betas)",
        "        betas = (0.9, 0.999)  # torch's default",
        ("tests/test_train.py::test_two_trainer_steps_make_the_adam_updates_of_section_4_1",),
        "the optimisers use torch's default betas (0.9, 0.999) instead of the configured (0.5, 0.999)"),
    Mutation(
        "lr_decay_not_applied", "svsgan_core/train/trainer.py",
        '                group["lr"] = lr * factor',
        '                group["lr"] = lr',
        ("tests/test_train.py::test_trainer_sets_the_scheduled_learning_rate_each_epoch",),
        "the trainer sets the base learning rate every epoch and never applies the schedule's decay factor"),
    Mutation(
        "decay_off_by_one", "svsgan_core/train/schedule.py",
        "        return max(0.0, 1.0 - (epoch - c + 1) / (d + 1))",
        "        return max(0.0, 1.0 - (epoch - c) / (d + 1))",
        ("tests/test_train.py::test_schedule_follows_section_4_1",),
        "the linear decay starts one epoch late: the first decay epoch still runs at the full rate"),
    # -- d8874ce: flow in full-resolution pixels; first-frame mode = continuing step with OC = 1 -------
    Mutation(
        "flow_not_scaled", "svsgan_core/models/flow.py",
        "                flow = F.interpolate(flow, **up) * float(self.downsample)",
        "                flow = F.interpolate(flow, **up)",
        ("tests/test_models.py::test_flow_net_flow_is_in_full_resolution_pixels",),
        "the flow net upsamples its low-resolution flow but does not scale the vectors to full-res pixels"),
    Mutation(
        "first_frame_black_prev", "svsgan_core/models/generator.py",
        "            skips = [seg.new_zeros(b, c, h >> l, w >> l) for l, c in enumerate(self.cfg.img_channels)]\n"
        "            skips.append(seg.new_zeros(b, 3, h, w))\n",
        "            skips = self.image_encoder(seg.new_zeros(b, 3, h, w))  # a black previous frame, ungated\n",
        ("tests/test_models.py::test_first_frame_mode_matches_full_occlusion_and_needs_no_previous_frame",),
        "first-frame mode feeds the image encoder a black frame instead of gating every image skip off"),
    # -- df95719: count_gflops against a hand count; CUDA tolerances below a 0.3 px warp error ---------
    Mutation(
        "gflops_module_hooks", "svsgan_core/runtime/benchmark.py",
        "    out = {}\n"
        '    for mode in ("first_frame", "continuing"):\n'
        "        counter = FlopCounterMode(display=False)\n"
        "        with counter, torch.no_grad():\n"
        '            gen(seg) if mode == "first_frame" else gen(seg, seg, img)\n'
        "        out[mode] = counter.get_total_flops() / 1e9\n",
        "    out, flops = {}, []\n"
        "\n"
        "    def conv_hook(m, inputs, y):  # 2 * Cin/groups * k*k * Cout * H*W per nn.Conv2d call\n"
        "        flops.append(2 * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] * m.out_channels\n"
        "                     * y.shape[0] * y.shape[-2] * y.shape[-1])\n"
        "\n"
        "    hooks = [m.register_forward_hook(conv_hook) for m in gen.modules() if isinstance(m, torch.nn.Conv2d)]\n"
        '    for mode in ("first_frame", "continuing"):\n'
        "        flops.clear()\n"
        "        with torch.no_grad():\n"
        '            gen(seg) if mode == "first_frame" else gen(seg, seg, img)\n'
        "        out[mode] = sum(flops) / 1e9\n"
        "    for h in hooks:\n"
        "        h.remove()\n",
        ("tests/test_fast_paths.py::test_flop_count_is_the_hand_count_of_every_convolution",),
        "count_gflops counts nn.Conv2d modules by hooks and misses convs called functionally (the flow head)"),
    Mutation(
        "loose_bf16_tolerance", "tests/test_fast_paths.py",
        '"bf16": (0.12, 0.016)}',
        '"bf16": (0.2, 0.05)}',
        ("tests/test_fast_paths.py::test_precision_tolerances_hold_bf16_and_catch_a_sub_pixel_warp_error",),
        "the CUDA bf16 tolerance is loosened so far that a frame warped 0.3 px off would pass it"),
    Mutation(
        "warp_half_pixel", "svsgan_core/models/flow.py",
        'padding_mode="border", align_corners=True)',
        'padding_mode="border", align_corners=False)',
        ("tests/test_models.py::test_warp_integer_shift_moves_pixels_exactly",),
        "warp samples with align_corners=False on a grid normalised for True: up to 0.5 px off (the precision test "
        "compares two precisions that share this warp, so only the exact-shift test can see it)"),
    # -- issue 12: Ray actors on a cluster, partial outputs on shared storage -----------------------
    Mutation(
        "ray_dead_actor_not_replaced", "svsgan_core/commands/convert.py",
        "                    actors[a] = actor_cls.remote(str(args.checkpoint), args.device, args.precision, threads)\n",
        "",
        ("tests/test_ray_convert.py::test_an_actor_that_dies_mid_bag_fails_that_bag_only_and_a_rerun_finishes_the_job",),
        "a dead Ray actor keeps its slot, so every later bag sent to it fails too"),
    Mutation(
        "ray_local_joins_running_cluster", "svsgan_core/commands/convert.py",
        'ray.init(address="local", num_cpus=args.workers,',
        'ray.init(num_cpus=args.workers,',
        ("tests/test_ray_convert.py::test_ray_converts_good_bags_like_one_process_and_reports_the_truncated_one",),
        "without RAY_ADDRESS, ray.init tries to join a cluster already running on the machine and refuses --workers"),
    Mutation(
        "partials_of_other_hosts_removed", "svsgan_core/io/bags.py",
        "        if not match or match.group(1) not in (None, socket.gethostname()):",
        "        if not match:",
        ("tests/test_robustness_inputs.py::test_the_next_run_in_a_folder_removes_partial_outputs_of_dead_processes",),
        "a writer judges another host's partial (shared storage) by a pid that means nothing here and deletes it"),
    # -- issue 25: a user's first hour -------------------------------------------------------------
    Mutation(
        "run_folder_not_resolved", "svsgan_core/runtime/checkpoint.py",
        "    if not (p / CONFIG_NAME).exists() and (p / RUN_LATEST).is_dir():\n        return p / RUN_LATEST\n",
        "",
        ("tests/test_inference.py::test_a_training_run_folder_loads_its_latest_checkpoint",),
        "`--checkpoint runs/<run>` (the docs' example) fails with 'config.yaml is missing' instead of loading latest"),
    Mutation(
        "string_arrays_unset", "ros2_ws/src/svs_gan_ros/svs_gan_ros/generator_node.py",
        "                param = self._declare_string_array(spec.name, desc)",
        "                param = self.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, desc)",
        ("tests/test_ros_node.py::test_lossless_every_input_encoding_one_frame_per_input_with_its_header",),
        "a string list left out of the parameters stays unset: `ros2 param dump` prints {} and `get` 'not set'"),
    Mutation(
        "convert_threads_torch_default", "svsgan_core/commands/convert.py",
        "            set_threads(args.threads)\n            synth = VideoSynthesizer",
        "            synth = VideoSynthesizer",
        ("tests/test_bags.py::test_convert_runs_one_thread_unless_told",),
        "convert leaves torch's one thread per core: two threads on two busy cores made a step 60x slower"),
    Mutation(
        "convert_workers_ignore_threads", "svsgan_core/commands/convert.py",
        "initargs=(str(args.checkpoint), args.device, args.precision, args.threads,",
        "initargs=(str(args.checkpoint), args.device, args.precision, max(1, (os.cpu_count() or 1) // workers),",
        ("tests/test_bags.py::test_cli_converts_several_bags_in_parallel_workers",),
        "parallel workers divide the cores among themselves and ignore --threads"),
    Mutation(
        "demo_threads_torch_default", "svsgan_core/commands/demo.py",
        "    set_threads(args.threads)\n", "",
        ("tests/test_demo.py::test_demo_on_a_shortened_sequence_writes_every_promised_file",),
        "the demo leaves torch's one thread per core instead of the project's one default"),
    Mutation(
        "launch_overrides_label_encoding", "ros2_ws/src/svs_gan_ros/launch/carla_native.launch.py",
        "            'label_encoding': LaunchConfiguration('label_encoding'),",
        "            'label_encoding': 'carla_raw',",
        ("tests/test_deploy_files.py::test_system_launch_files_pass_what_the_user_gives_through_to_the_node",
         "tests/test_deploy_files.py::test_included_launch_files_exist_and_get_only_their_own_arguments"),
        "carla_native lists label_encoding in --show-args but its include overrides what the user passed"),
    Mutation(
        "help_imports_torch", "svsgan_core/commands/eval.py",
        "    from ..metrics import DEFAULT_METRICS, METRICS\n",
        "    from ..metrics.evaluate import DEFAULT_METRICS, METRICS\n",
        ("tests/test_cli.py::test_every_commands_help_answers_without_importing_torch",),
        "`svsgan eval --help` imports the metrics (torch) before argparse runs: 6-9 s on a busy machine"),
    Mutation(
        "convert_bag_usage", "ros2_ws/src/svs_gan_ros/svs_gan_ros/convert_bag.py",
        "svsgan_main(['convert', *argv], prog='convert_bag')", "svsgan_main(['convert', *argv])",
        ("tests/test_cli.py::test_convert_bag_usage_names_convert_bag",),
        "`convert_bag --help` prints `usage: svsgan convert`"),
    Mutation(
        "make_synthetic_progress_always", "svsgan_core/commands/make_synthetic.py",
        "disable=args.no_progress", "disable=False",
        ("tests/test_cli.py::test_make_synthetic_no_progress_keeps_stderr_quiet",),
        "make-synthetic --no-progress still draws its bar"),
    Mutation(
        "set_typo_blamed_on_file", "svsgan_core/train/options.py",
        "        check_override_key(path)\n", "",
        ("tests/test_train.py::test_set_overrides_are_typed_and_unknown_keys_are_refused",),
        "a --set typo is reported as an unknown key of the YAML file"),
    Mutation(
        "check_calls_missing_data_valid", "svsgan_core/commands/train.py",
        "            if folder and not Path(folder).expanduser().is_dir():",
        "            if False:",
        ("tests/test_train.py::test_every_config_loads_and_validates",),
        "`svsgan train --check` calls a config whose data.root does not exist valid"),
    Mutation(
        "pseudo_label_keeps_none_yet", "svsgan_core/commands/pseudo_label.py",
        '"label_space", "labels")}', '"label_space")}',
        ("tests/test_pseudo_label.py::test_a_drive_recorded_with_rgb_only_becomes_a_trainable_dataset",),
        "after pseudo-label, dataset.yaml still says labels: 'none yet: run svsgan pseudo-label'"),
    Mutation(
        "missing_topic_said_twice", "svsgan_core/commands/convert.py",
        '        if len(self.jobs) > 1 or outcome["status"] == "done":', "        if True:",
        ("tests/test_bags.py::test_a_missing_topic_is_said_once_with_the_topics_the_bag_has",),
        "one input's missing topic is printed as the bag's line and again as the error"),
    Mutation(
        "segmenter_named_as_mious_network", "svsgan_core/metrics/miou.py",
        "        if model_path is not None and not os.path.exists(model_path):",
        "        if False:",
        ("tests/test_pseudo_label.py::test_missing_folder_pieces_and_missing_transformers_are_clear",),
        "a missing --segmenter is reported as a missing weight file, not as a folder/.pt/.onnx to give"),
    Mutation(
        "carla_threads_torch_default", "svsgan_core/commands/carla.py",
        "        set_threads(args.threads)  # CARLA's client and server share the cores\n", "",
        ("tests/test_carla.py::test_cli_with_a_real_checkpoint_records_a_bag_and_restores_the_world",),
        "`svsgan carla` runs the generator with torch's one thread per core beside the CARLA client"),
    Mutation(
        "ray_replacement_actor_default_threads", "svsgan_core/commands/convert.py",
        "                    actors[a] = actor_cls.remote(str(args.checkpoint), args.device, args.precision, args.threads)",
        "                    actors[a] = actor_cls.remote(str(args.checkpoint), args.device, args.precision, threads)",
        ("tests/test_ray_convert.py::test_an_actor_that_dies_mid_bag_fails_that_bag_only_and_a_rerun_finishes_the_job",),
        "the actor that replaces a dead one is built with a variable the threads change removed"),
    # -- issue 23: a reference camera for convert and the demo ---------------------------------------
    Mutation(
        "reference_no_lookahead", "svsgan_core/io/reference.py",
        "        while ahead < KEEP and (nxt := self._peek()) is not None and nxt.timestamp <= bag_time + WINDOW_NS:",
        "        while False:",
        (f"{BAGS}::test_each_sequence_starts_from_the_camera_frame_with_its_stamp_before_or_after_it_in_the_bag[mcap]",),
        "the cursor looks only at camera frames recorded before the semantic one: a bridge that publishes the "
        "camera later gets first-frame mode"),
    Mutation(
        "reference_no_lookbehind", "svsgan_core/io/reference.py",
        "        if best is not None:\n            return window[best[1]]",
        "        if False:\n            return window[best[1]]",
        (f"{BAGS}::test_each_sequence_starts_from_the_camera_frame_with_its_stamp_before_or_after_it_in_the_bag[mcap]",),
        "the cursor only reads ahead: a camera frame recorded before its semantic frame is never matched"),
    Mutation(
        "reference_not_passed", "svsgan_core/io/conversion.py",
        "                        synth.reset(reference_image=reference, stream=topic.stream)",
        "                        synth.reset(stream=topic.stream)",
        (f"{BAGS}::test_each_sequence_starts_from_the_camera_frame_with_its_stamp_before_or_after_it_in_the_bag[mcap]",),
        "the camera frame is found and counted but the sequence still starts in first-frame mode"),
    Mutation(
        "reference_tolerance_10x", "svsgan_core/io/reference.py",
        "    return int(round(max_dt_s * 1e9))", "    return int(round(max_dt_s * 1e10))",
        (f"{BAGS}::test_each_sequence_starts_from_the_camera_frame_with_its_stamp_before_or_after_it_in_the_bag[mcap]",),
        "the stamp tolerance is read as 10x too wide: a camera frame of another moment becomes the reference"),
    Mutation(
        "bad_reference_fails_the_bag", "svsgan_core/io/reference.py",
        "            except InputError as exc:\n                self._mark_bad(entry, exc)",
        "            except InputError:\n                raise",
        (f"{BAGS}::test_each_sequence_starts_from_the_camera_frame_with_its_stamp_before_or_after_it_in_the_bag[mcap]",),
        "a camera frame that is no RGB image stops the conversion, where the node drops it and goes on"),
    Mutation(
        "reference_window_hoards", "svsgan_core/io/reference.py",
        "            if behind > KEEP:\n                window.popleft()\n                behind -= 1\n", "",
        (f"{BAGS}::test_the_reference_cursor_keeps_only_a_few_messages_of_a_long_camera_topic",),
        "catching up keeps every camera frame since the last sequence start: memory grows with the bag"),
    Mutation(
        "reference_counted_always", "svsgan_core/io/conversion.py",
        "                            topic.from_reference += reference is not None",
        "                            topic.from_reference += 1",
        (f"{BAGS}::test_convert_says_how_each_sequence_started_and_a_wider_tolerance_finds_the_offset_frame",),
        "every sequence start is reported as started from the camera, also those in first-frame mode"),
    Mutation(
        "reference_max_dt_ignored", "svsgan_core/commands/convert.py",
        "        reference_max_dt_s=(ConvertOptions.reference_max_dt_s if args.reference_max_dt is None\n"
        "                            else args.reference_max_dt))",
        "        reference_max_dt_s=ConvertOptions.reference_max_dt_s)",
        (f"{BAGS}::test_convert_says_how_each_sequence_started_and_a_wider_tolerance_finds_the_offset_frame",),
        "--reference-max-dt is parsed but the default tolerance is used"),
    Mutation(
        "map_reference_dropped", "svsgan_core/io/conversion.py",
        "        return cls(*(p.strip() for p in parts))", "        return cls(*(p.strip() for p in parts[:2]))",
        (f"{BAGS}::test_cli_converts_several_bags_in_parallel_workers",),
        "--map SOURCE:TARGET:REFERENCE loses its third topic: the workers convert in first-frame mode"),
    Mutation(
        "reference_name_unchecked", "svsgan_core/io/conversion.py",
        '                check_topic_name(m.reference, "--map reference")\n', "",
        (f"{HOSTILE}::test_a_bad_reference_camera_is_one_line[bad-name]",),
        "a --map reference that is no ROS topic name gets the missing-topic listing instead of the rule it breaks"),
    Mutation(
        "demo_camera_not_beside", "svsgan_core/commands/demo.py",
        '            beside = topic.replace("/semantic_segmentation_", "/rgb_")',
        '            beside = topic.replace("/semantic_segmentation_", "/camera_")',
        (f"{DEMO}::test_demo_on_a_shortened_sequence_writes_every_promised_file",
         f"{DEMO}::test_demo_takes_the_camera_beside_the_semantic_one_or_the_one_named"),
        "the demo looks for the camera under another name than carla-ros-bridge's: the bundled bag runs first-frame mode"),
    Mutation(
        "demo_no_reference_ignored", "svsgan_core/commands/demo.py",
        "    if disabled:\n        return None\n", "",
        (f"{DEMO}::test_demo_in_first_frame_mode_says_so_and_shows_two_columns[--no-reference]",),
        "--no-reference is accepted and ignored"),
    Mutation(
        "demo_column_shows_the_reference_only", "svsgan_core/commands/demo.py",
        "[_fit(event.camera(), labels.shape)]", "[_fit(event.reference, labels.shape)]",
        (f"{DEMO}::test_demo_on_a_shortened_sequence_writes_every_promised_file",),
        "the camera column shows the sequence's first camera frame only, grey panels after it"),
    # -- issue 26: every hostile input a clear line ----------------------------------------------------
    Mutation(
        "map_topic_unchecked", "svsgan_core/io/conversion.py",
        '            check_topic_name(m.target, "--map target")\n', "",
        (f"{HOSTILE}::test_an_invalid_map_topic_is_refused_before_any_work[/9bad-name-must not start with a digit]",),
        "a --map target that is no ROS topic name reaches the writer: exit 0 and no generated frames"),
    Mutation(
        "jpeg_labels_decoded", "svsgan_core/io/conversion.py",
        "        array, encoding = label_image(ros_msg, int(options.max_megapixels * 1e6))",
        "        array, encoding = message_to_numpy(ros_msg, int(options.max_megapixels * 1e6))",
        (f"{HOSTILE}::test_jpeg_label_frames_are_refused_as_lossy_in_convert_extract_and_the_node",),
        "conversion decodes label messages like any image again, so a JPEG ids topic converts with wrong ids"),
    Mutation(
        "label_space_checked_lazily", "svsgan_core/io/conversion.py",
        '            get_label_space(self.label_space, "--label-space")\n', "            pass\n",
        (f"{HOSTILE}::test_an_unknown_label_space_is_refused_on_every_input_kind_before_any_work",),
        "--label-space is looked up only when an ids camera decodes: ignored on palette input"),
    Mutation(
        "engine_label_space_lazily", "ros2_ws/src/svs_gan_ros/svs_gan_ros/engine.py",
        "            get_label_space(label_space, 'parameter label_space:')\n", "            pass\n",
        (f"{HOSTILE}::test_the_node_engine_refuses_an_unknown_label_space_for_palette_cameras_too",),
        "the node reads label_space only for ids cameras: a typo goes unnoticed on palette cameras"),
    Mutation(
        "symlink_loop_unguarded", "svsgan_core/io/bags.py",
        "    try:\n        real_dest = dest.resolve()\n    except (RuntimeError, OSError):",
        "    real_dest = dest.resolve()\n    if False:",
        (f"{HOSTILE}::test_an_output_through_a_symlink_loop_is_one_line",),
        "check_destination resolves the output unguarded: a symlink loop is a RuntimeError traceback"),
    Mutation(
        "reset_gap_unbounded", "svsgan_core/io/timeline.py",
        "        if not 0 < reset_gap_s <= MAX_RESET_GAP_S:", "        if not reset_gap_s > 0:",
        (f"{HOSTILE}::test_a_reset_gap_outside_its_range_is_one_line[1e300]",),
        "the reset gap has no upper bound: 1e300 s overflows the nanosecond conversion"),
    Mutation(
        "device_parsed_not_checked", "svsgan_core/runtime/backend.py",
        '    if dev is not None and (dev.type == "cpu" or dev.type == "mps" and "mps" in usable_devices() or (',
        '    if dev is not None and (dev.type in ("cpu", "mps") or (',
        (f"{HOSTILE}::test_a_device_this_torch_cannot_use_is_refused_before_any_work[mps]",),
        "a device is accepted when torch can parse its name: mps fails deep in the model load"),
    Mutation(
        "binary_config_unguarded", "svsgan_core/runtime/checkpoint.py",
        "    except UnicodeDecodeError:\n        raise CheckpointError(",
        "    except NotImplementedError:\n        raise CheckpointError(",
        (f"{HOSTILE}::test_binary_checkpoint_and_training_configs_are_one_line",),
        "read_config lets a binary config.yaml's UnicodeDecodeError through: no file named in the error"),
    Mutation(
        "no_preflight", "svsgan_core/runtime/checkpoint.py",
        "    preflight.check(cfg, str(cfg_path))", "    pass",
        (f"{HOSTILE}::test_impossible_networks_are_refused_with_the_numbers_in_little_memory[num_classes]",),
        "a checkpoint's config is built as declared: a billion classes go straight to the allocator"),
    Mutation(
        "estimate_misses_the_flow_net", "svsgan_core/runtime/preflight.py",
        "    params += _conv(prev, 2, 3) + _conv(prev, 1, 3)\n", "    params = 0\n",
        (f"{HOSTILE}::test_the_size_estimate_follows_the_real_network_and_the_limit_can_be_raised",),
        "the parameter estimate drops the flow net's layers"),
    Mutation(
        "digest_read_whole", "svsgan_core/runtime/export.py",
        "    digest = _read_digest(_digest_path(out))\n",
        "    digest = _digest_path(out).read_text().strip() if _digest_path(out).exists() else None\n",
        (f"{HOSTILE}::test_a_cache_digest_that_is_a_special_file_is_not_read",),
        "the cache digest is read whole through links: a link to /dev/zero eats memory until MemoryError"),
    Mutation(
        "mcap_lengths_unchecked", "svsgan_core/io/bags.py",
        "                    _check_mcap_lengths(file)\n", "                    pass\n",
        (f"{HOSTILE}::test_a_garbage_mcap_record_length_is_checked_against_the_file_size_before_allocating",),
        "rosbags reads an MCAP record of whatever length it declares: a garbage file allocates gigabytes"),
    Mutation(
        "interrupted_load_drops_entry", "svsgan_core/runtime/synthesizer.py",
        "        except ImportError:  # onnx/onnxruntime, not the file", "        except NotImplementedError:  # onnx",
        (f"{HOSTILE}::test_an_interrupted_load_keeps_a_valid_cache_entry",),
        "any load failure deletes the cached graph, also Ctrl-C's ImportError while onnx initialises"),
    Mutation(
        "onnx_segmenter_unguarded", "svsgan_core/metrics/miou.py",
        "        except Exception as exc:  # noqa: BLE001 - onnxruntime's own classes",
        "        except ImportError as exc:  # noqa: BLE001 - onnxruntime's own classes",
        (f"{HOSTILE}::test_a_garbage_onnx_segmenter_is_one_line",),
        "a garbage --segmenter file reaches the user as onnxruntime's InvalidProtobuf traceback"),
    Mutation(
        "failed_bag_leaves_partial", "svsgan_core/io/bags.py",
        "            try:\n                self._writer.abort()\n            finally:\n                self._dir.discard()\n",
        "            self._writer.abort()\n",
        (f"{HOSTILE}::test_two_bags_one_bad_keep_the_good_output_and_no_part_of_the_bad_one",),
        "a bag that fails midway keeps its hidden partial folder beside the good outputs"),
    Mutation(
        "bug_without_traceback", "svsgan_core/cli.py",
        "    if message is None or debug:", "    if debug:",
        (f"{HOSTILE}::test_a_bug_keeps_its_traceback_and_says_where_to_report_it",),
        "the last net swallows the traceback of an unexpected exception"),
    Mutation(
        "node_topics_unchecked", "ros2_ws/src/svs_gan_ros/svs_gan_ros/generator_node.py",
        "        self._check_topic_names(p)\n", "",
        (f"{ROS_HOSTILE}::test_bad_parameters_and_command_lines_are_one_fatal_line",),
        "the node creates subscriptions on unchecked names: InvalidTopicNameException traceback"),
    Mutation(
        "node_ros_args_unchecked", "ros2_ws/src/svs_gan_ros/svs_gan_ros/generator_node.py",
        "        check_ros_args(argv)\n", "",
        (f"{ROS_HOSTILE}::test_bad_parameters_and_command_lines_are_one_fatal_line",),
        "a missing --params-file or a bare -p reaches rcl: its [ERROR] line and an RCLError with C file names"),
    Mutation(
        "early_ctrl_c_raises", "ros2_ws/src/svs_gan_ros/svs_gan_ros/generator_node.py",
        "signal.signal(signal.SIGINT, lambda *_: _early_interrupt.append(1))",
        "signal.signal(signal.SIGINT, signal.default_int_handler)",
        (f"{ROS_HOSTILE}::test_ctrl_c_while_the_node_imports_torch_leaves_quietly",),
        "Ctrl-C while torch imports raises KeyboardInterrupt out of the module import: a traceback"),
]


# -- issue 24: instance ids, their boundaries, the instance topic and CARLA's instance camera --------
INSTANCES = "tests/test_instances.py"
ENGINE = "tests/test_ros_engine.py"
ROS_INSTANCES = ("tests/test_ros_instances.py::"
                 "test_two_topics_lossless_pair_by_stamp_unpaired_and_wrong_size_frames_are_counted_drops",)
MUTATIONS += [
    Mutation(
        "carla_instance_bytes_swapped", "svsgan_core/data/instances.py",
        "g.astype(np.uint16) | (b.astype(np.uint16) << 8)", "b.astype(np.uint16) | (g.astype(np.uint16) << 8)",
        (f"{INSTANCES}::test_carla_instance_camera_pixel_decodes_to_its_tag_and_16_bit_object_id",),
        "CARLA's object id read as B + 256 G: ids differ from CARLA's own (G is the low byte)"),
    Mutation(
        "carla_instance_without_tag", "svsgan_core/data/instances.py",
        "return (tags.astype(np.int32) << 16) | object_ids.astype(np.int32)", "return object_ids.astype(np.int32)",
        (f"{INSTANCES}::test_decode_instances_keys_carla_objects_by_tag_and_id_in_every_colour_order",),
        "the instance key drops the tag: a pedestrian and a car that share a truncated 16-bit id merge"),
    Mutation(
        "edges_one_side", "svsgan_core/data/instances.py",
        "    edges[..., :, :-1] |= across\n", "",
        (f"{INSTANCES}::test_two_cars_side_by_side_get_a_boundary_where_they_touch",),
        "a horizontal change marks only the right-hand pixel: boundaries depend on scan direction"),
    Mutation(
        "boundary_without_semantic_edges", "svsgan_core/data/instances.py",
        "    return edges | instance_edges(instances)", "    return instance_edges(instances)",
        (f"{INSTANCES}::test_boundary_map_falls_back_to_semantic_edges_and_adds_instance_edges",),
        "with a vid2vid instance map (stuff all 255) the class boundaries between stuff vanish"),
    Mutation(
        "rock_to_ignore", "svsgan_core/data/labels.py",
        '    "rock": "terrain",', '    "rock": "unlabeled",',
        ("tests/test_labels.py::test_carla_0_10_rock_tag_29_is_read_raw_and_as_palette_and_becomes_terrain",),
        "CARLA 0.10's rock becomes ignore instead of terrain, against docs/labels.md"),
    Mutation(
        "pairer_keeps_older_halves", "ros2_ws/src/svs_gan_ros/svs_gan_ros/engine.py",
        "                if waiting[3 + present] < half[3 + present]:  # came before the pair on its own topic",
        "                if False:",
        (f"{ENGINE}::test_a_frame_whose_partner_never_comes_is_dropped_counted_and_logged_once_a_later_pair_completes",)
        + ROS_INSTANCES,
        "a frame whose instance image was lost waits out instance_wait_s unseen instead of being counted at once"),
    Mutation(
        "pairer_stamp_order", "ros2_ws/src/svs_gan_ros/svs_gan_ros/engine.py",
        "                if waiting[3 + present] < half[3 + present]:  # came before the pair on its own topic",
        "                if older < stamp:",
        (f"{ENGINE}::test_a_looping_bag_keeps_the_new_loops_frames_whose_instances_lag_behind",),
        "ExactTime's stamp order: a looping bag's first frames are dropped while their instances are coming"),
    Mutation(
        "pairer_creation_order", "ros2_ws/src/svs_gan_ros/svs_gan_ros/engine.py",
        "                if waiting[3 + present] < half[3 + present]:  # came before the pair on its own topic",
        "                if waiting[2] <= half[2]:",
        (f"{ENGINE}::test_a_frame_whose_partner_never_comes_is_dropped_counted_and_logged_once_a_later_pair_completes",),
        "halves judged by when their stamp was first seen: with one topic ahead an orphan waits unseen"),
    Mutation(
        "pairer_never_expires", "ros2_ws/src/svs_gan_ros/svs_gan_ros/engine.py",
        "            if now - half[2] < self.wait_s:", "            if True:",
        (f"{ENGINE}::test_a_half_waits_at_most_instance_wait_s_and_its_sequence_start_carries_over",),
        "a half whose partner never comes (the stream stopped) waits forever and is never counted"),
    Mutation(
        "unpaired_frame_loses_sequence_start", "ros2_ws/src/svs_gan_ros/svs_gan_ros/engine.py",
        "                cam.carry = cam.carry or (item if item.reason else None)\n", "",
        (f"{ENGINE}::test_a_half_waits_at_most_instance_wait_s_and_its_sequence_start_carries_over",),
        "a dropped unpaired frame that started a sequence takes the sequence start with it"),
    Mutation(
        "labels_not_paired", "ros2_ws/src/svs_gan_ros/svs_gan_ros/engine.py",
        "            if cam.pairer is not None:\n                self._pair(cam, 0, stamp, frame)",
        "            if False:\n                self._pair(cam, 0, stamp, frame)",
        ROS_INSTANCES, "label frames are generated without waiting for their instance image"),
    Mutation(
        "instance_size_unchecked", "ros2_ws/src/svs_gan_ros/svs_gan_ros/engine.py",
        "        if ids.shape != shape:", "        if False:",
        (f"{ENGINE}::test_an_instance_image_of_the_wrong_size_is_a_logged_drop_and_the_next_pair_is_generated",)
        + ROS_INSTANCES,
        "an instance image of another size than its labels reaches the model"),
    Mutation(
        "node_instances_as_references", "ros2_ws/src/svs_gan_ros/svs_gan_ros/generator_node.py",
        "                    partial(self.engine.submit_instances, i),", "                    partial(self.engine.submit_reference, i),",
        ROS_INSTANCES, "the node subscribes the instance topic but hands its images to the wrong queue"),
    Mutation(
        "carla_instances_not_fed", "svsgan_core/io/carla_client.py",
        '            rgb = synthesizer.step(labels, instances=decode_instances(frame.instance_bgra, "bgra8"))',
        "            rgb = synthesizer.step(labels)",
        ("tests/test_carla.py::test_instance_camera_sits_beside_the_semantic_one_and_its_ids_reach_the_generator",),
        "svsgan carla spawns the instance camera but the generator never sees its ids"),
    Mutation(
        "carla_instance_camera_elsewhere", "svsgan_core/io/carla_client.py",
        '        if cfg.instance_camera:  # the same pose, resolution and tick as the semantic camera\n'
        '            self._camera(INSTANCE_BLUEPRINT,',
        '        if cfg.instance_camera:  # the same pose, resolution and tick as the semantic camera\n'
        '            cfg.camera.x += 0.5\n            self._camera(INSTANCE_BLUEPRINT,',
        ("tests/test_carla.py::test_instance_camera_sits_beside_the_semantic_one_and_its_ids_reach_the_generator",),
        "the instance camera is mounted half a metre off the semantic one: its ids do not line up"),
    Mutation(
        "native_launch_drops_instance_topic", "ros2_ws/src/svs_gan_ros/launch/carla_native.launch.py",
        "            'instance_topic': LaunchConfiguration('instance_topic'),\n", "",
        ("tests/test_deploy_files.py::test_included_launch_files_exist_and_get_only_their_own_arguments",),
        "carla_native.launch.py declares instance_topic but does not hand it to generate.launch.py"),
    Mutation(
        "generate_instance_topic_not_a_list", "ros2_ws/src/svs_gan_ros/launch/generate.launch.py",
        "LIST_PARAMETERS = ('input_topics', 'output_topics', 'instance_topics')",
        "LIST_PARAMETERS = ('input_topics', 'output_topics')",
        ("tests/test_deploy_files.py::test_generate_launch_has_num_threads_and_qos_and_every_argument_reaches_a_node_parameter",),
        "instance_topic:=/x reaches the node as a string where it declares a string list: it refuses to start"),
    Mutation(
        "native_launch_camera_always_off", "ros2_ws/src/svs_gan_ros/launch/carla_native.launch.py",
        "\"'--instance-camera' if '\"", "\"'--no-instance-camera' if '\"",
        ("tests/test_deploy_files.py::test_native_launch_runs_a_real_svsgan_carla_command",),
        "naming the instance topic does not make the driver spawn CARLA's instance camera"),
]


# -- issue 24, the data half: instance maps in the datasets, make-synthetic, conversion, eval, pseudo-labels
DATA = "tests/test_instance_data.py"
SYNTH = "tests/test_synthetic.py"
CONV = "tests/test_convert_instances.py"
BOUNDARY = "tests/test_boundary_metric.py"
PSEUDO = "tests/test_pseudo_label.py"
MUTATIONS += [
    Mutation(
        "dataset_edges_ignore_instances", "svsgan_core/data/datasets.py",
        "            edges[t, 0] = boundary_map(labels[t], instances)", "            edges[t, 0] = boundary_map(labels[t])",
        (f"{DATA}::test_edges_separate_touching_cars_and_fall_back_to_label_edges",),
        "the dataset reads instance maps but draws the label edges only: two touching cars stay one blob"),
    Mutation(
        "instances_skip_crop_and_flip", "svsgan_core/data/datasets.py",
        "                instances = geometry.label(instances)",
        "                instances = cv2.resize(instances, (self.width, self.height), interpolation=cv2.INTER_NEAREST)",
        (f"{DATA}::test_edges_are_computed_on_the_output_grid_after_resize_crop_and_flip",),
        "instance ids resized but not cropped and flipped with their clip: edges land beside the objects"),
    Mutation(
        "instance_summary_per_sequence", "svsgan_core/data/datasets.py",
        "self.instance_frames = sum(f.instance is not None for seq in sequences for f in seq.frames)",
        "self.instance_frames = sum(len(seq) for seq in sequences if seq.frames[0].instance is not None)",
        (f"{DATA}::test_edges_separate_touching_cars_and_fall_back_to_label_edges",),
        "the summary counts a sequence as covered when its first frame has an instance map"),
    Mutation(
        "folder_layout_misses_instances", "svsgan_core/data/layouts.py",
        "folder_frame(seq_dir, p.stem, p.suffix, p.stem in instances)", "folder_frame(seq_dir, p.stem, p.suffix, False)",
        (f"{DATA}::test_folder_and_carla_layouts_find_instances_per_frame",),
        "the generic layout never finds instances/: make-synthetic and extract output trains on label edges"),
    Mutation(
        "cityscapes_gtfine_instance_suffix", "svsgan_core/data/layouts.py",
        '    return f"{prefix}instanceIds"', '    return "instanceIds"',
        (f"{DATA}::test_cityscapes_finds_instance_ids_beside_pseudo_labels_and_gtfine",),
        "beside gtFine_labelIds the loader looks for *_instanceIds.png, not the official *_gtFine_instanceIds.png"),
    Mutation(
        "kitti360_instance_folder", "svsgan_core/data/layouts.py",
        '        instance_dir = semantics / drive / camera / "instance"', '        instance_dir = semantics / drive / camera / "instances"',
        (f"{DATA}::test_kitti360_and_vid2vid_find_their_instance_folders",),
        "KITTI-360's instance/ folder is looked for under another name"),
    Mutation(
        "vid2vid_inst_folder", "svsgan_core/data/layouts.py",
        '    instance_base = root / f"{split}_inst"', '    instance_base = root / f"{split}_instance"',
        (f"{DATA}::test_kitti360_and_vid2vid_find_their_instance_folders",),
        "vid2vid's <split>_inst is looked for under another name"),
    Mutation(
        "instance_png_channel_order", "svsgan_core/data/layouts.py",
        '"bgr" if ids.shape[2] == 3 else "bgra"', '"rgb" if ids.shape[2] == 3 else "rgba"',
        (f"{DATA}::test_a_carla_instance_camera_png_reads_as_the_topic_decodes",),
        "a CARLA instance-camera PNG read as RGB: the tag comes from the blue channel"),
    Mutation(
        "instance_png_8_bit", "svsgan_core/data/layouts.py",
        "        _write_png(path, ids.astype(np.uint16))", "        _write_png(path, ids.astype(np.uint8))",
        (f"{DATA}::test_instance_files_round_trip_16_bit_colour_and_compacted",),
        "instance ids written as 8-bit: Cityscapes-style ids (26001) wrap and merge objects"),
    Mutation(
        "synthetic_instances_not_drawn", "svsgan_core/data/synthetic.py",
        "        instances[pix] = np.array([f.instance for f in kept], np.uint16)[fid]\n", "",
        (f"{SYNTH}::test_instance_ids_mark_each_object_and_leave_frames_labels_and_flow_alone",),
        "the renderer draws objects but not their instance ids"),
    Mutation(
        "touching_cars_apart", "svsgan_core/data/synthetic.py",
        'z = car.z + car.data["dims"]["half_length"] - rng.uniform(0.02, 0.08)',
        'z = car.z + car.data["dims"]["half_length"] + rng.uniform(1.5, 3.0)',
        (f"{SYNTH}::test_touching_rows_park_cars_bumper_to_bumper",),
        "--touching parks its rows with gaps: the cars no longer touch"),
    Mutation(
        "pedestrian_groups_apart", "svsgan_core/data/synthetic.py",
        "                z += rng.uniform(0.35, 0.55)", "                z += rng.uniform(3.0, 5.0)",
        (f"{SYNTH}::test_touching_scenes_put_cars_and_pedestrians_against_each_other",),
        "--touching's pedestrian groups are spread metres apart: nobody touches"),
    Mutation(
        "make_synthetic_without_instances", "svsgan_core/commands/make_synthetic.py",
        "rendered[0][i], rendered[1][i], rendered[-1][i])", "rendered[0][i], rendered[1][i])",
        ("tests/test_datasets.py::test_make_synthetic_writes_the_generic_layout",
         f"{DATA}::test_make_synthetic_touching_writes_instances_that_split_what_the_labels_merge"),
        "make-synthetic renders instance ids but writes no instances/"),
    Mutation(
        "convert_instances_not_passed", "svsgan_core/io/conversion.py",
        "rgb = synth.step(labels, stream=topic.stream, instances=instances)",
        "rgb = synth.step(labels, stream=topic.stream, instances=None)",
        (f"{CONV}::test_conversion_hands_each_frame_the_instance_ids_of_its_exact_stamp_and_counts_the_rest",),
        "convert pairs the instance images but the generator never gets them"),
    Mutation(
        "convert_instances_nearest_stamp", "svsgan_core/io/conversion.py",
        "typestore=options.typestore, max_dt_s=0.0,", "typestore=options.typestore, max_dt_s=0.001,",
        (f"{CONV}::test_conversion_hands_each_frame_the_instance_ids_of_its_exact_stamp_and_counts_the_rest",),
        "instance images paired by nearest stamp, not exactly as the node pairs them"),
    Mutation(
        "convert_instance_size_unchecked", "svsgan_core/io/conversion.py",
        "        if ids is not None and ids.shape != labels.shape:", "        if False:",
        (f"{CONV}::test_conversion_hands_each_frame_the_instance_ids_of_its_exact_stamp_and_counts_the_rest",),
        "an instance image of another size than its labels reaches the model"),
    Mutation(
        "extract_instances_dropped", "svsgan_core/commands/extract.py",
        "write_frame(root, sequence, index, pending_rgb.pop(li), labels, ids)",
        "write_frame(root, sequence, index, pending_rgb.pop(li), labels, None)",
        (f"{CONV}::test_extract_writes_the_paired_instance_ids_as_the_datasets_instance_maps",),
        "extract pairs the instance topic but writes no instance maps"),
    Mutation(
        "boundary_across_classes", "svsgan_core/metrics/boundary.py",
        "        seam = (labels[sl_a] == labels[sl_b]) & (a != b)", "        seam = a != b",
        (f"{BOUNDARY}::test_seam_contrast_by_hand",),
        "the boundary metric counts class boundaries too, which the labels already draw"),
    Mutation(
        "boundary_keeps_one_pixel_contacts", "svsgan_core/metrics/boundary.py",
        "    keep = length >= min_seam", "    keep = length >= 1",
        (f"{BOUNDARY}::test_short_contacts_and_ignored_pixels_are_left_out",),
        "one-pixel corner contacts count as seams"),
    Mutation(
        "boundary_ratio_inverted", "svsgan_core/metrics/boundary.py",
        '{"boundary": fake / max(real, 1e-6),', '{"boundary": real / max(fake, 1e-6),',
        (f"{BOUNDARY}::test_boundary_is_generated_over_real_averaged_over_pairs_and_frames",),
        "boundary reported as real over generated"),
    Mutation(
        "eval_instances_not_fed", "svsgan_core/commands/eval.py",
        "outputs.append(synth.step(lab.astype(np.int64), instances=instances[t]))",
        "outputs.append(synth.step(lab.astype(np.int64)))",
        (f"{BOUNDARY}::test_checkpoint_mode_reads_the_datas_instances_feeds_them_to_the_generator_and_scores_them",),
        "eval scores boundaries on instance maps the generator never got"),
    Mutation(
        "panoptic_no_overlap_check", "svsgan_core/metrics/miou.py",
        "if area and whole and area / whole > OVERLAP_THRESHOLD and is_thing(int(classes[query])):",
        "if area and is_thing(int(classes[query])):",
        (f"{PSEUDO}::test_object_segments_follow_mask2formers_panoptic_inference",),
        "a query keeps the scraps of a mask that mostly lost to others: spurious objects"),
    Mutation(
        "panoptic_stuff_as_objects", "svsgan_core/metrics/miou.py",
        "area / whole > OVERLAP_THRESHOLD and is_thing(int(classes[query])):", "area / whole > OVERLAP_THRESHOLD:",
        (f"{PSEUDO}::test_object_segments_follow_mask2formers_panoptic_inference",),
        "stuff segments (road) become objects of their own"),
    Mutation(
        "pseudo_instances_not_on_labels", "svsgan_core/commands/pseudo_label.py",
        "write_instances(job.instance, thing_instance_ids(label, segments[k]))", "write_instances(job.instance, segments[k])",
        (f"{PSEUDO}::test_panoptic_pseudo_labels_write_instance_maps_the_datasets_read",),
        "pseudo instance maps hold bare segment numbers, not Cityscapes' instanceIds on the labels"),
    Mutation(
        "pseudo_resume_ignores_instances", "svsgan_core/commands/pseudo_label.py",
        "        if _done(job) and not overwrite:", "        if job.label.is_file() and not overwrite:",
        (f"{PSEUDO}::test_panoptic_pseudo_labels_write_instance_maps_the_datasets_read",),
        "a rerun keeps a labelled frame whose instance map is missing: it never gets one"),
    Mutation(
        "mask_sigmoid_overflows", "svsgan_core/metrics/miou.py",
        "masks = 0.5 * (1.0 + np.tanh(0.5 * mask_logits[keep].astype(np.float32)))",
        "masks = 1.0 / (1.0 + np.exp(-mask_logits[keep].astype(np.float32)))",
        (f"{PSEUDO}::test_object_segments_take_mask_logits_far_beyond_float32_exp_range",),
        "mask logits in the hundreds overflow exp: a RuntimeWarning per panoptic image"),
]

# issue 23: the class palette anchored to a stream's first frame
EXPORT = "tests/test_export.py"
MUTATIONS += [
    Mutation(
        "palette_not_anchored", "svsgan_core/runtime/synthesizer.py",
        "            if with_prev and self.cfg.class_palette:", "            if False:",
        (f"{EXPORT}::test_a_class_palette_stream_takes_its_colours_from_its_first_frame",),
        "a stream takes the palette from its last output again: colours drift to black and white holes"),
    Mutation(
        "onnx_anchor_is_previous", "svsgan_core/runtime/synthesizer.py",
        'given = {"prev_image": prev_image, "prev_labels": prev_labels, "labels": labels, **extras}',
        'given = {"prev_image": prev_image, "prev_labels": prev_labels, "labels": labels, **extras, '
        '"anchor_image": prev_image}',
        (f"{EXPORT}::test_a_class_palette_stream_takes_its_colours_from_its_first_frame",),
        "onnxruntime streams feed the previous frame as the anchor: the graph path drifts where PyTorch does not"),
    Mutation(
        "stale_graph_inputs_accepted", "svsgan_core/runtime/synthesizer.py",
        "        if names != want:  # a graph written", "        if False:  # a graph written",
        (f"{EXPORT}::test_a_cached_graph_without_the_inputs_its_model_needs_is_exported_again",),
        "a cached graph of an older svsgan is fed inputs it lacks: onnxruntime fails mid-stream"),
]

# issue 24: the class palette with objects (palette_instances)
OBJECTS = "tests/test_palette_objects.py"
MUTATIONS += [
    Mutation(
        "object_colour_ignored", "svsgan_core/models/generator.py",
        "    return own_known * own + (1.0 - own_known) * colour, torch.maximum(known, own_known)",
        "    return colour, known",
        (f"{OBJECTS}::test_each_touching_car_starts_at_its_own_colour_in_the_source_frame",
         f"{OBJECTS}::test_a_stream_keeps_each_object_its_first_frame_colour_in_pytorch_and_onnx"),
        "the slots are computed but every object still takes its class's colour: touching cars stay one blob"),
    Mutation(
        "slots_any_class", "svsgan_core/models/generator.py",
        "classes[per_class > 1]", "classes",
        (f"{OBJECTS}::test_palette_slots_follow_objects_by_id_and_leave_one_segment_classes_to_the_class_palette",),
        "stuff (one segment per class) takes slots: the budget goes to the road, not the cars"),
    Mutation(
        "slots_unmatched_taken", "svsgan_core/models/generator.py",
        "        found = self.keys[at] == key", "        found = torch.ones_like(at, dtype=torch.bool)",
        (f"{OBJECTS}::test_palette_slots_follow_objects_by_id_and_leave_one_segment_classes_to_the_class_palette",),
        "an object the source frame does not show takes its nearest key's slot: a new car gets another car's colour"),
    Mutation(
        "stream_slots_dropped", "svsgan_core/runtime/synthesizer.py",
        "for name, value in extras.items()}", 'for name, value in extras.items() if "slots" not in name}',
        (f"{OBJECTS}::test_a_stream_keeps_each_object_its_first_frame_colour_in_pytorch_and_onnx",),
        "a PyTorch stream never gives G the slots: objects get their colours in training only"),
    Mutation(
        "batch_none_ids_refused", "svsgan_core/runtime/synthesizer.py",
        "            ids = [None if instances[i] is None else self._instance_ids(instances[i], label_maps[i])",
        "            ids = [self._instance_ids(instances[i], label_maps[i])",
        (f"{OBJECTS}::test_a_stream_keeps_each_object_its_first_frame_colour_in_pytorch_and_onnx",),
        "a batch mixing a camera with instance ids and one without fails: the node drops every frame of both"),
    Mutation(
        "samples_without_slots", "svsgan_core/train/trainer.py",
        "labels.shape[1], edges, instances)", "labels.shape[1], edges)",
        (f"{OBJECTS}::test_a_tiny_run_with_object_colours_trains_on_the_clips_ids_and_eval_reads_it",),
        "a run's sample videos paint class colours only: they do not show what the model does"),
    Mutation(
        "ids_renumbered_per_frame", "svsgan_core/runtime/synthesizer.py",
        "            arr = values[self._resize_ids(compact)]", "            arr = self._resize_ids(compact)",
        (f"{OBJECTS}::test_a_stream_keeps_each_object_its_first_frame_colour_in_pytorch_and_onnx",),
        "ids renumbered per frame before the resize: a car entering with a smaller id shifts the others' slots"),
    Mutation(
        "onnx_slots_zero", "svsgan_core/runtime/synthesizer.py",
        'given = {"prev_image": prev_image, "prev_labels": prev_labels, "labels": labels, **extras}',
        'given = {"prev_image": prev_image, "prev_labels": prev_labels, "labels": labels, **extras, '
        '"slots": torch.zeros_like(labels), "anchor_slots": torch.zeros_like(labels)}',
        (f"{OBJECTS}::test_a_stream_keeps_each_object_its_first_frame_colour_in_pytorch_and_onnx",),
        "onnxruntime streams feed no slots: the CPU default path (svsgan eval) paints class colours only"),
    Mutation(
        "train_without_ids", "svsgan_core/train/trainer.py",
        "            outs = self.loss.generate(labels, c0, c1, prev, edges, instances)",
        "            outs = self.loss.generate(labels, c0, c1, prev, edges)",
        (f"{OBJECTS}::test_a_tiny_run_with_object_colours_trains_on_the_clips_ids_and_eval_reads_it",),
        "training never gives G the slots: it learns to correct class colours, then meets object colours in streams"),
]


def copy_tree(files: list[str], src: Path, dst: Path) -> None:
    for rel in files:
        s, d = src / rel, dst / rel
        if not (s.is_file() or s.is_symlink()):
            continue  # tracked but deleted in the working tree
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(s, d, follow_symlinks=False)


def snapshot(dst: Path) -> list[str]:
    """The working tree as git sees it (tracked + untracked, not ignored) copied to dst."""
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                         check=True, capture_output=True, text=True).stdout
    files = sorted({f for f in out.split("\0") if f})
    copy_tree(files, REPO, dst)
    return files


def source(root: Path, m: Mutation) -> str:
    """The file's text; exits if the mutation's old text is not in it exactly once."""
    text = (root / m.path).read_text()
    n = text.count(m.old)
    if n != 1:
        sys.exit(f"mutation {m.name}: the old text occurs {n} times in {m.path}, expected exactly once")
    return text


def mutate(root: Path, m: Mutation) -> None:
    (root / m.path).write_text(source(root, m).replace(m.old, m.new))


def env_for(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "ros2_ws" / "src" / "svs_gan_ros")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # copies are reused: no stale .pyc between them
    return env


def check_imports(root: Path) -> None:
    """The copy, not an editable install elsewhere, must be what `import svsgan_core` finds."""
    code = "import svsgan_core, svs_gan_ros; print(svsgan_core.__file__); print(svs_gan_ros.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env_for(root),
                         capture_output=True, text=True)
    paths = out.stdout.split()
    if out.returncode or len(paths) != 2 or not all(Path(p).resolve().is_relative_to(root.resolve()) for p in paths):
        sys.exit(f"imports do not resolve into the copy {root}:\n{out.stdout}{out.stderr}")


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[int, str, float]:
    """(exit code, first failing assertion line or '', seconds) of one pytest run in root."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=root, env=env_for(root), capture_output=True, text=True,
                           timeout=TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {TEST_TIMEOUT_S} s", time.monotonic() - t0
    lines = (p.stdout + p.stderr).splitlines()
    first = next((l[1:].strip() for l in lines if l.startswith("E ")), "")
    if p.returncode and not first:  # no assertion line (a collection error, a crash): the summary
        first = next((l for l in reversed(lines) if l.strip()), "")
    return p.returncode, first, time.monotonic() - t0


def cell(text: str, width: int = 150) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 3] + "..."


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Break the code each issue-11 test guards, one realistic bug at a time, and show that the "
                    "test then fails (and passes without the bug). Works on temporary copies of the working tree; "
                    "the repository is never modified. Exit 0 only if every baseline passed and every mutation "
                    "was caught.",
        epilog="Run from anywhere; one pytest at a time. Results end in a Markdown table.")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only this mutation (repeatable); see --list for the names")
    ap.add_argument("--list", action="store_true", help="list the mutations and their tests, run nothing")
    args = ap.parse_args()

    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:24s} {m.path}\n{'':24s} {m.why}\n{'':24s} tests: {' '.join(m.tests)}")
        return 0
    chosen = MUTATIONS
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTATIONS}
        if unknown:
            ap.error(f"unknown mutation(s): {', '.join(sorted(unknown))} (see --list)")
        chosen = [m for m in MUTATIONS if m.name in args.only]

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutation_check_") as tmp:
        clean = Path(tmp) / "clean"
        files = snapshot(clean)  # one snapshot: every copy below starts from the same tree
        for m in chosen:  # fail loudly on a stale mutation before spending any test time
            source(clean, m)
        check_imports(clean)
        print(f"copied {len(files)} files to {clean}", flush=True)

        baseline: dict[tuple[str, ...], tuple[int, str]] = {}
        for tests in dict.fromkeys(m.tests for m in chosen):
            rc, first, secs = run_tests(clean, tests)
            baseline[tests] = (rc, first)
            print(f"baseline {'pass' if rc == 0 else 'FAIL'} ({secs:.0f} s): {' '.join(tests)}"
                  + (f"\n    {first}" if rc else ""), flush=True)

        rows, bad = [], 0
        for m in chosen:
            b_rc, b_first = baseline[m.tests]
            if b_rc:
                result, bad = f"BASELINE FAILED (not counted): {b_first}", bad + 1
            else:
                work = Path(tmp) / m.name
                copy_tree(files, clean, work)
                mutate(work, m)
                rc, first, secs = run_tests(work, m.tests)
                shutil.rmtree(work)
                if rc:
                    result = f"caught: {first}"
                else:
                    result, bad = "MISSED", bad + 1
                print(f"{m.name}: {result} ({secs:.0f} s)", flush=True)
            rows.append((m.name, m.path, " ".join(m.tests), result))

    print(f"\n{len(chosen)} mutations, {bad} missed or without a passing baseline, "
          f"{time.monotonic() - start:.0f} s in all\n")
    print("| mutation | file | test | result |")
    print("| --- | --- | --- | --- |")
    for name, path, tests, result in rows:
        print(f"| {name} | {path} | {cell(tests, 200)} | {cell(result)} |")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
