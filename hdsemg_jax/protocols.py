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

``protocol.subjects`` and ``protocol.sessions`` restrict the data pool;
``protocol.folds`` only chooses which folds run.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Callable, Sequence

from hdsemg_jax.data.trials import Trial


@dataclasses.dataclass(frozen=True)
class Fold:
  """One train/test split, by trial id (``"subject-session-part-trial"``)."""
  id: str
  train: tuple[str, ...]
  test: tuple[str, ...]

  def describe(self, trials: Sequence[Trial]) -> dict[str, Any]:
    """The split as written into results: trial ids plus their subjects and sessions."""
    by_id = {t.id: t for t in trials}
    out = {}
    for role, ids in (('train', self.train), ('test', self.test)):
      members = [by_id[i] for i in ids]
      out[role] = {
          'trials': list(ids),
          'subjects': sorted({t.subject for t in members}),
          'sessions': sorted({t.session for t in members}),
      }
    return out


ProtocolFn = Callable[[Sequence[Trial]], list[Fold]]
PROTOCOLS: dict[str, ProtocolFn] = {}


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


def _as_ints(values, key: str) -> set[int] | None:
  if values is None:
    return None
  try:
    return {int(v) for v in values}
  except (TypeError, ValueError):
    raise ValueError(f'{key} must be a tuple of integers; got {values!r}.') from None


def make_folds(trials: Sequence[Trial], protocol_config: Any) -> list[Fold]:
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
