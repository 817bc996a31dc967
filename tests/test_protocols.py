"""Fold tables: exact train/test membership."""

import ml_collections
import numpy as np
import pytest

from hdsemg_jax import protocols
from hdsemg_jax.data.trials import Trial, number_repetitions


def _trial(subject, session, part, trial, gesture):
  return Trial(subject, session, part, trial, np.zeros((4, 2, 2), np.float32),
               np.full(4, gesture, np.int32))


def _protocol(**kw):
  cfg = dict(name='intra_session', sessions=None, subjects=None, folds=None)
  cfg.update(kw)
  return ml_collections.ConfigDict(cfg)


@pytest.fixture
def capgmyo_like():
  # 2 subjects x 2 sessions x 2 gestures x 4 repetitions, numbered (gesture-1)*10 + rep.
  return number_repetitions(
      _trial(s, ss, '', g * 10 + r, g) for s in (1, 2) for ss in (1, 2) for g in (0, 1)
      for r in (1, 2, 3, 4))


def test_intra_session_odd_repetitions_train_even_test(capgmyo_like):
  folds = protocols.make_folds(capgmyo_like, _protocol())
  assert [f.id for f in folds] == ['S01-s1', 'S01-s2', 'S02-s1', 'S02-s2']
  fold = folds[0]
  assert fold.train == ('1-1--1', '1-1--3', '1-1--11', '1-1--13')
  assert fold.test == ('1-1--2', '1-1--4', '1-1--12', '1-1--14')
  for f in folds:
    assert not set(f.train) & set(f.test)


def test_intra_session_uses_train_and_test_parts_where_recorded():
  trials = number_repetitions([
      _trial(1, 1, 'train', 1, 0), _trial(1, 1, 'train', 2, 0), _trial(1, 1, 'test', 1, 0),
      _trial(1, 2, 'test', 1, 0)])  # Session 2: test only, no fold.
  (fold,) = protocols.make_folds(trials, _protocol())
  assert (fold.id, fold.train, fold.test) == ('S01-s1', ('1-1-train-1', '1-1-train-2'),
                                              ('1-1-test-1',))


def test_pool_and_fold_selection(capgmyo_like):
  folds = protocols.make_folds(capgmyo_like, _protocol(subjects=(2,), sessions=(1,)))
  assert [f.id for f in folds] == ['S02-s1']
  folds = protocols.make_folds(capgmyo_like, _protocol(folds=('S02-s2', 'S01-s1')))
  assert [f.id for f in folds] == ['S02-s2', 'S01-s1']
  with pytest.raises(ValueError, match="protocol.folds: \\['S09-s1'\\]"):
    protocols.make_folds(capgmyo_like, _protocol(folds=('S09-s1',)))
  with pytest.raises(ValueError, match=r'protocol.subjects: \[7\]'):
    protocols.make_folds(capgmyo_like, _protocol(subjects=(7,)))
  with pytest.raises(ValueError, match='protocol.name'):
    protocols.make_folds(capgmyo_like, _protocol(name='nope'))


def test_inter_session_trains_on_session_one_and_tests_each_later_session(capgmyo_like):
  folds = protocols.make_folds(capgmyo_like, _protocol(name='inter_session'))
  assert [f.id for f in folds] == ['S01-s1>s2', 'S02-s1>s2']
  for f in folds:
    subject = f.id[2]
    assert {t.split('-')[:2] == [subject, '1'] for t in f.train} == {True}
    assert {t.split('-')[:2] == [subject, '2'] for t in f.test} == {True}
    assert len(f.train) == len(f.test) == 8


def test_inter_session_tests_on_the_test_part_where_recorded():
  trials = number_repetitions([
      _trial(1, 1, 'train', 1, 0), _trial(1, 1, 'test', 1, 0), _trial(1, 2, 'test', 1, 0),
      _trial(1, 3, 'train', 1, 0), _trial(1, 3, 'test', 1, 0)])
  folds = protocols.make_folds(trials, _protocol(name='inter_session'))
  assert [(f.id, f.train, f.test) for f in folds] == [
      ('S01-s1>s2', ('1-1-test-1', '1-1-train-1'), ('1-2-test-1',)),
      ('S01-s1>s3', ('1-1-test-1', '1-1-train-1'), ('1-3-test-1',))]


def test_leave_one_subject_out_never_shares_a_subject(capgmyo_like):
  folds = protocols.make_folds(capgmyo_like, _protocol(name='leave_one_subject_out'))
  assert [f.id for f in folds] == ['S01', 'S02']
  for f in folds:
    held_out = int(f.id[1:])
    assert {int(t.split('-')[0]) for t in f.test} == {held_out}
    assert held_out not in {int(t.split('-')[0]) for t in f.train}
    assert len(f.train) == len(f.test) == 16
  # protocol.subjects restricts the pool, and so every fold's training set.
  three = number_repetitions([*capgmyo_like, *(
      _trial(3, 1, '', g * 10 + r, g) for g in (0, 1) for r in (1, 2))])
  folds = protocols.make_folds(three, _protocol(name='leave_one_subject_out', subjects=(1, 3)))
  assert [f.id for f in folds] == ['S01', 'S03']
  assert not any(t.startswith('2-') for f in folds for t in f.train)
