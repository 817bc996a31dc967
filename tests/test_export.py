"""Tests of model export (hdsemg_jax.deployment, experiments.export) on a tiny trained run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments.configs import tiny
from hdsemg_jax.deployment import artifacts, export
from hdsemg_jax.run import export_run

FOLD, SEED = 'S01-s1', 0
SPECS = ('notch:50', 'bandpass:20:380:4')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow  # Every test here trains a model or exports one.


@pytest.fixture(scope='module')
def run_dir(tiny_data_dir, tmp_path_factory) -> str:
  from hdsemg_jax.run import experiment
  config = tiny.get_config()
  config.seeds = (SEED,)
  config.protocol.subjects = (1,)
  config.dataset.data_dir = tiny_data_dir
  config.dataset.filters = SPECS
  workdir = str(tmp_path_factory.mktemp('export_run'))
  rows = experiment.train_and_evaluate(config, workdir)
  assert [(r['fold'], r['seed']) for r in rows] == [(FOLD, SEED)]
  return workdir


@pytest.fixture(scope='module')
def model(run_dir):
  import hdsemg_jax
  return hdsemg_jax.load_model(run_dir, FOLD, SEED)


@pytest.fixture(scope='module')
def test_frames(run_dir, model) -> np.ndarray:
  frames, _ = export_run.fold_test_frames(run_dir, FOLD, SEED, model)
  return frames


@pytest.fixture(scope='module')
def onnx_export(run_dir, tmp_path_factory) -> export.ExportResult:
  return export_run.export_run(run_dir, FOLD, SEED, 'onnx', str(tmp_path_factory.mktemp('onnx')))


@pytest.fixture(scope='module')
def stablehlo_export(run_dir, tmp_path_factory) -> export.ExportResult:
  return export_run.export_run(run_dir, FOLD, SEED, 'stablehlo',
                           str(tmp_path_factory.mktemp('stablehlo') / 'out'))


def _check_description(result: export.ExportResult, fmt: str, model, run_dir: str) -> None:
  with open(result.metadata) as f:
    meta = json.load(f)
  with open(result.artifact, 'rb') as f:
    data = f.read()
  assert meta['format'] == fmt and meta['artifact'] == os.path.basename(result.artifact)
  assert meta['sha256'] == artifacts.sha256(data)
  assert meta['class_names'] == list(model.info.class_names)
  assert meta['grid_shape'] == [16, 8] and meta['num_classes'] == model.info.num_classes
  # The saved model's own conditioning object, as its model.json has it.
  assert meta['conditioning'] == {'filters': list(SPECS), 'mode': 'zero_phase',
                                  'sampling_rate_hz': 1000.0}
  assert meta['conditioning'] == model.info.conditioning.as_dict()
  assert (meta['fold'], meta['seed']) == (FOLD, SEED)
  assert meta['input'] == {'name': 'frames', 'shape': ['N', 16, 8], 'dtype': 'float32'}
  assert meta['parity']['ok'] and meta['parity']['argmax_equal']
  assert meta['parity']['max_abs_logit_diff'] <= export.DEFAULT_ATOL
  assert 'test trials of fold S01-s1' in meta['parity']['source']
  assert meta['provenance']['run_dir'] == os.path.abspath(run_dir)
  assert meta['provenance']['versions']['jax']


def test_onnx_reloads_with_onnxruntime_and_predicts_alike(onnx_export, model, test_frames,
                                                          run_dir):
  import onnxruntime
  _check_description(onnx_export, 'onnx', model, run_dir)
  # A plain session: nothing of this project is needed to run the file.
  session = onnxruntime.InferenceSession(onnx_export.artifact,
                                         providers=['CPUExecutionProvider'])
  logits = session.run(['logits'], {'frames': test_frames})[0]
  np.testing.assert_array_equal(np.argmax(logits, -1), model.predict(test_frames))
  # Any batch size.
  one = session.run(['logits'], {'frames': test_frames[:1]})[0]
  np.testing.assert_allclose(one, logits[:1], atol=1e-4)


def test_stablehlo_deserializes_and_predicts_alike(stablehlo_export, model, test_frames,
                                                   run_dir):
  from jax import export as jax_export
  _check_description(stablehlo_export, 'stablehlo', model, run_dir)
  with open(stablehlo_export.artifact, 'rb') as f:
    exported = jax_export.deserialize(bytearray(f.read()))
  logits = np.asarray(exported.call(test_frames))
  np.testing.assert_array_equal(np.argmax(logits, -1), model.predict(test_frames))
  assert np.asarray(exported.call(test_frames[:3])).shape == (3, model.info.num_classes)


def test_artifacts_decode_as_the_jax_model(onnx_export, stablehlo_export, model, tiny_trials):
  from hdsemg_jax import streaming
  _, trials = tiny_trials
  emg = np.concatenate([t.emg for t in trials if t.subject == 1][:6])
  samples = emg.reshape(len(emg), -1)
  reference = streaming.Decoder.from_model(model, window=10)
  want = [reference.push(samples[i:i + 13]) for i in range(0, len(samples), 13)]
  for result in (onnx_export, stablehlo_export):
    decoder = streaming.Decoder.from_artifact(result.artifact, window=10)
    assert decoder.filters == SPECS and decoder.class_names == model.info.class_names
    got = [decoder.push(samples[i:i + 13]) for i in range(0, len(samples), 13)]
    np.testing.assert_array_equal(np.concatenate([g.votes for g in got]),
                                  np.concatenate([w.votes for w in want]))
    np.testing.assert_array_equal(np.concatenate([g.classes for g in got]),
                                  np.concatenate([w.classes for w in want]))


def _perturbed(monkeypatch, scale: float) -> None:
  """Makes the exported function differ from the model: a corrupted artifact."""
  original = export.artifact_function

  def perturbed(model):
    fn = original(model)
    return lambda frames: fn(frames) * (1 + scale) + scale
  monkeypatch.setattr(export, 'artifact_function', perturbed)


def test_parity_failure_writes_nothing(run_dir, stablehlo_export, model, test_frames,
                                       monkeypatch, tmp_path):
  _perturbed(monkeypatch, 1e-3)
  fresh = tmp_path / 'fresh'
  with pytest.raises(export.ParityError, match=r'max \|logit difference\|.*nothing was written'):
    export.export_model(model, str(fresh), 'stablehlo', test_frames)
  assert not fresh.exists()
  assert os.listdir(tmp_path) == []  # No staging folder left behind either.
  # An earlier export in the output folder stays as it was.
  out_dir = os.path.dirname(stablehlo_export.artifact)
  before = {n: open(os.path.join(out_dir, n), 'rb').read() for n in os.listdir(out_dir)}
  with pytest.raises(export.ParityError):
    export.export_model(model, out_dir, 'stablehlo', test_frames)
  after = {n: open(os.path.join(out_dir, n), 'rb').read() for n in os.listdir(out_dir)}
  assert before == after


def test_tolerance_zero_fails_a_perturbed_export_that_argmax_alone_would_pass(
    model, test_frames, monkeypatch, tmp_path):
  _perturbed(monkeypatch, 1e-6)  # Keeps every argmax, changes the logits.
  with pytest.raises(export.ParityError, match=r'allowed 0\b'):
    export.export_model(model, str(tmp_path / 'out'), 'stablehlo', test_frames, atol=0.0)


def test_exact_stablehlo_passes_tolerance_zero(model, test_frames, tmp_path):
  # The deserialized module is the model's own computation: no difference at all.
  result = export.export_model(model, str(tmp_path / 'out'), 'stablehlo', test_frames, atol=0.0)
  assert result.parity.max_abs_logit_diff == 0.0


def test_altered_or_unfinished_artifacts_are_refused(stablehlo_export, tmp_path):
  import shutil
  copy = tmp_path / 'model.stablehlo'
  shutil.copy(stablehlo_export.artifact, copy)
  with pytest.raises(artifacts.ArtifactError, match='unfinished'):
    artifacts.load_artifact(str(copy))
  shutil.copy(stablehlo_export.metadata, str(copy) + '.json')
  artifacts.load_artifact(str(copy))
  with open(copy, 'ab') as f:
    f.write(b'\0')
  with pytest.raises(artifacts.ArtifactError, match='sha256'):
    artifacts.load_artifact(str(copy))


def _cli(args: list[str], prelude: str = '') -> subprocess.CompletedProcess:
  code = (f'{prelude}\nfrom experiments import cli, export\n'
          f'import sys\nsys.argv = {["export", *args]!r}\ncli.run(export.main)')
  return subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                        timeout=600)


def test_cli_exports_and_fails_loudly(run_dir, tmp_path):
  out = tmp_path / 'cli'
  ok = subprocess.run([sys.executable, '-m', 'experiments.export', run_dir, f'--fold={FOLD}',
                       f'--seed={SEED}', '--format=stablehlo', f'--out={out}'], cwd=ROOT,
                      capture_output=True, text=True, timeout=600)
  assert ok.returncode == 0, ok.stderr
  assert 'argmax equal on all' in ok.stdout
  assert sorted(os.listdir(out)) == ['model.stablehlo', 'model.stablehlo.json']
  # The same command with a corrupted artifact: status 1, the reason, no output.
  prelude = ('from hdsemg_jax.deployment import export\n'
             'original = export.artifact_function\n'
             'export.artifact_function = lambda m: (lambda x: original(m)(x) + 0.01)')
  bad_out = tmp_path / 'bad'
  failed = _cli([run_dir, f'--fold={FOLD}', f'--seed={SEED}', '--format=stablehlo',
                 f'--out={bad_out}'], prelude)
  assert failed.returncode == 1, failed.stderr
  assert 'export failed: parity check' in failed.stderr
  assert not bad_out.exists()
  unknown = subprocess.run([sys.executable, '-m', 'experiments.export', run_dir, '--fold=nope',
                            '--format=onnx', f'--out={bad_out}'], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
  assert unknown.returncode == 1 and 'no saved model' in unknown.stderr
  assert not bad_out.exists()
  # Without the export extras: which requirements file to install, status 2, one line.
  missing = _cli([run_dir, f'--fold={FOLD}', f'--seed={SEED}', '--format=onnx',
                  f'--out={bad_out}'], "import sys\nsys.modules['jax2onnx'] = None")
  assert missing.returncode == 2, missing.stderr
  assert missing.stderr.strip().splitlines()[-1].startswith(
      'error: export failed: jax2onnx is not installed: exported models need the export '
      'extras; install them with pip install -r requirements-export.txt')
  assert 'Traceback' not in missing.stderr and not bad_out.exists()


def test_importing_the_library_imports_no_onnx():
  code = ('import sys, hdsemg_jax, hdsemg_jax.streaming, hdsemg_jax.evaluation.online, '
          'hdsemg_jax.deployment.artifacts, hdsemg_jax.deployment.export\n'
          'print(sorted(m for m in ("onnx", "onnxruntime", "jax2onnx") if m in sys.modules))')
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == '[]'
