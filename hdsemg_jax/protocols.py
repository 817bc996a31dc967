"""Evaluation protocols: which trials train and which test, fold by fold.

Every fold table of every dataset is made here, from the trials' identities and
the ``protocol`` config alone (never from the seed), so a split is a function of
the config and is written into the results.

* ``intra_session``: one fold per (subject, session). Where a session was
  recorded in ``train`` and ``test`` parts (flexemg), the train part trains and
  the test part tests; otherwise odd repetitions of each gesture (1, 3, 5, ...)
  train and even ones test, as in the CapgMyo authors' protocol.
* ``inter_session``: per subject, every trial of its first session trains; each
  later session is a fold that tests on its ``test`` part where the session has
  one (flexemg), else on all of it (CapgMyo DB-b).
* ``leave_one_subject_out``: per subject, all trials of the other subjects in
  the pool train and all of its own trials test.
* ``intra_session_pretrain`` (Geng et al. 2016's recipe): the folds of
  ``intra_session``, but the model is pre-trained on the training trials of
  every fold in the pool (all subjects and sessions) and then fine-tuned on the
  target fold's own training trials (``Fold.finetune``) before testing.

Fine-tuning on the target (``adapt.method='finetune'``, All-ConvNet+TL) is a
transform of an inter-* fold: `split_for_finetune` moves the first k trials of
each target gesture out of ``test`` into ``finetune``, so they are never scored.

``protocol.subjects`` and ``protocol.sessions`` restrict the data pool;
``protocol.folds`` only chooses which folds run.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
from typing import Any, Callable, Sequence

from hdsemg_jax.data.trials import DatasetSpec, Trial


@dataclasses.dataclass(frozen=True)
class ProtocolSettings:
  """Which folds to make (the config's ``protocol.*``).

  Attributes:
    name: a protocol of `PROTOCOLS`.
    subjects: the data pool's subjects (None: all).
    sessions: the data pool's sessions (None: all).
    folds: which folds run, by id (None: all).
  """
  name: str
  subjects: tuple[int, ...] | None = None
  sessions: tuple[int, ...] | None = None
  folds: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Fold:
  """One split, by trial id (``"subject-session-part-trial"``).

  ``train`` trains (pre-trains, where ``finetune`` is set), ``finetune`` then
  fine-tunes the trained model, ``test`` scores it.
  """
  id: str
  train: tuple[str, ...]
  test: tuple[str, ...]
  finetune: tuple[str, ...] = ()

  def describe(self, trials: Sequence[Trial]) -> dict[str, Any]:
    """The split as written into results: trial ids plus their subjects and sessions.

    The ``finetune`` role is present only when the fold fine-tunes, so rows of
    runs without it keep their earlier shape.
    """
    by_id = {t.id: t for t in trials}
    out = {}
    roles = [('train', self.train), ('test', self.test)]
    if self.finetune:
      roles.append(('finetune', self.finetune))
    for role, ids in roles:
      members = [by_id[i] for i in ids]
      out[role] = {
          'trials': list(ids),
          'subjects': sorted({t.subject for t in members}),
          'sessions': sorted({t.session for t in members}),
      }
    return out


ProtocolFn = Callable[[Sequence[Trial]], list[Fold]]
PROTOCOLS: dict[str, ProtocolFn] = {}
# What each protocol holds out of training: a model selected on the training data mirrors it
# (classical.selection's inner folds).
HELD_OUT_UNIT = {'intra_session': 'trial', 'intra_session_pretrain': 'trial',
                 'inter_session': 'session', 'leave_one_subject_out': 'subject'}


def register(name: str) -> Callable[[ProtocolFn], ProtocolFn]:
  def wrap(fn: ProtocolFn) -> ProtocolFn:
    PROTOCOLS[name] = fn
    return fn
  return wrap


def _ids(trials: Sequence[Trial]) -> tuple[str, ...]:
  return tuple(t.id for t in trials)


@register('intra_session')
def intra_session(trials: Sequence[Trial]) -> list[Fold]:
  groups = collections.defaultdict(list)
  for t in trials:
    groups[(t.subject, t.session)].append(t)
  folds = []
  for (subject, session), members in sorted(groups.items()):
    parts = {t.part for t in members}
    if parts == {''}:
      train = [t for t in members if t.repetition % 2 == 1]
      test = [t for t in members if t.repetition % 2 == 0]
    elif 'train' in parts and 'test' in parts:
      train = [t for t in members if t.part == 'train']
      test = [t for t in members if t.part == 'test']
    else:
      continue  # A session recorded for testing only (flexemg session 2) has no intra fold.
    if train and test:
      folds.append(Fold(f'S{subject:02d}-s{session}', _ids(train), _ids(test)))
  return folds


@register('inter_session')
def inter_session(trials: Sequence[Trial]) -> list[Fold]:
  by_subject = collections.defaultdict(list)
  for t in trials:
    by_subject[t.subject].append(t)
  folds = []
  for subject, members in sorted(by_subject.items()):
    sessions = sorted({t.session for t in members})
    train = [t for t in members if t.session == sessions[0]]
    for session in sessions[1:]:
      target = [t for t in members if t.session == session]
      if any(t.part == 'test' for t in target):
        target = [t for t in target if t.part == 'test']
      folds.append(Fold(f'S{subject:02d}-s{sessions[0]}>s{session}', _ids(train), _ids(target)))
  return folds


@register('leave_one_subject_out')
def leave_one_subject_out(trials: Sequence[Trial]) -> list[Fold]:
  subjects = sorted({t.subject for t in trials})
  if len(subjects) < 2:
    return []
  return [Fold(f'S{s:02d}', _ids([t for t in trials if t.subject != s]),
               _ids([t for t in trials if t.subject == s])) for s in subjects]


@register('intra_session_pretrain')
def intra_session_pretrain(trials: Sequence[Trial]) -> list[Fold]:
  folds = intra_session(trials)
  # Pre-training sees the training trials of every subject and session in the pool, never a
  # test trial of any fold; the target's own training trials are then used again to fine-tune.
  pretrain = tuple(sorted({i for f in folds for i in f.train}))
  return [Fold(f.id, pretrain, f.test, finetune=f.train) for f in folds]


def _multi_gesture(trial: Trial) -> bool:
  return len(set(trial.label[trial.label >= 0].tolist())) > 1


def split_for_finetune(fold: Fold, trials: Sequence[Trial], k: int) -> Fold:
  """``fold`` with the first ``k`` trials of each target gesture moved from test to finetune.

  "First" is recording order: session, part, then repetition (trial number). Where
  the target trials each hold several gestures (flexemg's part-based trials), a
  gesture has no trials of its own, so the first ``k`` target trials overall are
  taken instead. Fails if no test trial would be left.
  """
  if k < 1:
    raise ValueError(f'adapt.finetune_trials must be >= 1; got {k}.')
  if fold.finetune:
    raise ValueError(f'fold {fold.id} already fine-tunes; it cannot be split again.')
  by_id = {t.id: t for t in trials}
  target = sorted((by_id[i] for i in fold.test),
                  key=lambda t: (t.session, t.part, t.repetition, t.trial))
  if any(_multi_gesture(t) for t in target):
    chosen = target[:k]
  else:
    taken: collections.Counter = collections.Counter()
    chosen = []
    for t in target:
      if taken[t.gesture] < k:
        taken[t.gesture] += 1
        chosen.append(t)
  finetune = {t.id for t in chosen}
  test = tuple(i for i in fold.test if i not in finetune)
  if not test:
    raise ValueError(f'fold {fold.id}: adapt.finetune_trials={k} leaves no test trials '
                     f'({len(fold.test)} target trials).')
  return dataclasses.replace(fold, test=test,
                             finetune=tuple(i for i in fold.test if i in finetune))


def _as_ints(values, key: str) -> set[int] | None:
  if values is None:
    return None
  try:
    return {int(v) for v in values}
  except (TypeError, ValueError):
    raise ValueError(f'{key} must be a tuple of integers; got {values!r}.') from None


def make_folds(trials: Sequence[Trial], protocol_config: ProtocolSettings | Any) -> list[Fold]:
  """The folds to run for ``protocol_config`` (``name``, ``subjects``, ``sessions``, ``folds``)."""
  name = protocol_config.name
  if name not in PROTOCOLS:
    raise ValueError(f'protocol.name={name!r} is not known (known: {", ".join(sorted(PROTOCOLS))}).')
  subjects = _as_ints(protocol_config.subjects, 'protocol.subjects')
  sessions = _as_ints(protocol_config.sessions, 'protocol.sessions')
  pool = [t for t in trials
          if (subjects is None or t.subject in subjects)
          and (sessions is None or t.session in sessions)]
  for key, wanted, present in (('protocol.subjects', subjects, {t.subject for t in trials}),
                               ('protocol.sessions', sessions, {t.session for t in trials})):
    if wanted is not None and not wanted <= present:
      raise ValueError(f'{key}: {sorted(wanted - present)} not in the dataset '
                       f'(it holds {sorted(present)}).')
  folds = PROTOCOLS[name](pool)
  if protocol_config.folds is not None:
    chosen = [str(f) for f in protocol_config.folds]
    known = {f.id: f for f in folds}
    unknown = [f for f in chosen if f not in known]
    if unknown:
      raise ValueError(f'protocol.folds: {unknown} are not folds of {name} '
                       f'(known: {", ".join(known)}).')
    folds = [known[f] for f in chosen]
  if not folds:
    raise ValueError(f'protocol {name!r} has no folds for this data pool '
                     f'(subjects={protocol_config.subjects}, sessions={protocol_config.sessions}).')
  return folds


def describe_folds(spec: DatasetSpec, trials: Sequence[Trial], folds: Sequence[Fold]) -> str:
  """The fold table as text, every role's trials listed."""
  lines = [f'{spec.name} ({"synthetic" if spec.synthetic else "recorded"}), '
           f'{len(trials)} trials, {len(folds)} folds']
  for fold in folds:
    lines.append(f'fold {fold.id}:')
    lines.append(f'  train ({len(fold.train)}): {" ".join(fold.train)}')
    lines.append(f'  test  ({len(fold.test)}): {" ".join(fold.test)}')
    if fold.finetune:
      lines.append(f'  finetune ({len(fold.finetune)}): {" ".join(fold.finetune)}')
  return '\n'.join(lines)


def split_id(dataset: str, version: str, fold: Fold) -> str:
  """A short, stable id of the dataset version and the fold's exact trials per role.

  Two results rows with the same id were trained and tested on the same trials
  (the report refuses to put rows with different ids in one column).
  """
  roles = {'train': fold.train, 'test': fold.test, 'finetune': fold.finetune}
  key = json.dumps({'dataset': dataset, 'version': version,
                    **{role: sorted(ids) for role, ids in roles.items()}}, sort_keys=True)
  return hashlib.sha256(key.encode()).hexdigest()[:12]
