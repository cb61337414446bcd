package fieldsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// SyncReport counts what one Sync did.
type SyncReport struct {
	// Pushed counts the mutations sent (each once, however often retried).
	Pushed int
	// Applied, Merged, Conflicts and Rejected count the answers.
	Applied   int
	Merged    int
	Conflicts int
	Rejected  int
	// Requeued counts the conflicts the resolver queued again.
	Requeued int
	// Pulled counts the envelopes pulled.
	Pulled int
	// PhotosUploaded counts photo bytes sent; PhotosSkipped those the
	// server already had.
	PhotosUploaded int
	PhotosSkipped  int
	// Retries counts the requests sent again after a passing failure.
	Retries int
	// Resumes counts the resumable photo uploads that went on from the
	// server's offset after a cut or a refusal to try again later.
	Resumes int
	// Logins and Refreshes count the token pairs got by password and by
	// refresh token.
	Logins    int
	Refreshes int
}

// maxRequeueRounds bounds how often one Sync pushes changes its resolver
// queued, so that a record under constant contention cannot keep it busy.
const maxRequeueRounds = 3

// Sync exchanges changes with the server:
//
//  1. it uploads queued photo bytes (HEAD first, skipped when the server has
//     them), and only then lets the photos' records go;
//  2. it pushes the outbox, oldest first, in batches of at most BatchSize
//     mutations and at most one per record; a batch that fails for a
//     passing reason is sent again, with the same mutation ids, after a
//     backoff (see RetryPolicy); an answer that is applied or merged
//     stores the new version and rebases the record's later changes onto
//     it; a conflict stores the server's record and asks the Resolver; a
//     rejection is kept (see Rejections) and the change dropped;
//  3. it pulls until the server has no more, storing each page and its
//     checkpoint in one local transaction.
//
// Photo bytes that cannot be uploaded now hold back only their own records:
// the push and the pull go on, and Sync returns the upload's error at the
// end. A push or pull that fails stops the Sync. What was done so far is
// kept, the rest is done by the next Sync, and the report counts what was
// done either way.
func (c *Client) Sync(ctx context.Context) (SyncReport, error) {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	var rep SyncReport
	start := time.Now()
	photoErr := c.uploadPhotos(ctx, &rep)
	err := ctx.Err()
	if err == nil {
		err = c.push(ctx, &rep)
	}
	if err == nil {
		err = c.pull(ctx, &rep)
	}
	err = errors.Join(photoErr, err)
	attrs := []any{slog.Int("pushed", rep.Pushed), slog.Int("applied", rep.Applied), slog.Int("merged", rep.Merged),
		slog.Int("conflicts", rep.Conflicts), slog.Int("rejected", rep.Rejected), slog.Int("pulled", rep.Pulled),
		slog.Int("photos_uploaded", rep.PhotosUploaded), slog.Int("photos_skipped", rep.PhotosSkipped),
		slog.Int("retries", rep.Retries), slog.Duration("took", time.Since(start))}
	if err != nil {
		c.log.WarnContext(ctx, "sync failed", append(attrs, slog.String("error", err.Error()))...)
		return rep, fmt.Errorf("fieldsync.Sync: %w", err)
	}
	c.log.InfoContext(ctx, "synced", attrs...)
	return rep, nil
}

// push sends the outbox as it was when the push began, plus what the
// resolver queues, batch by batch.
func (c *Client) push(ctx context.Context, rep *SyncReport) error {
	maxSeq, err := c.db.lastSeq(ctx)
	if err != nil {
		return fmt.Errorf("local store: %w", err)
	}
	size, rounds := c.cfg.BatchSize, 0
	for {
		batch, err := c.db.nextBatch(ctx, maxSeq, size)
		if err != nil || len(batch) == 0 {
			return err
		}
		muts := make([]schema.Mutation, len(batch))
		for i := range batch {
			muts[i] = batch[i].Mutation
		}
		req, err := schema.NewPushRequest(c.cfg.DeviceID, muts)
		if err != nil {
			return fmt.Errorf("push: %w", err)
		}
		var resp schema.PushResponse
		err = c.api.call(ctx, "push", "/v1/sync/push", req, &resp, rep)
		var re *ResponseError
		if errors.As(err, &re) && re.Status == http.StatusRequestEntityTooLarge {
			// Too large for the server: halve the batches; a single
			// mutation that is too large is refused for good.
			if len(batch) > 1 {
				size = len(batch) / 2
				continue
			}
			resp.Results, err = []schema.PushResult{{MutationID: batch[0].MutationID, Status: schema.PushRejected, Error: re.Err}}, nil
		}
		if err != nil {
			return err
		}
		rep.Pushed += len(batch)
		requeued, err := c.answer(ctx, batch, resp.Results, rep)
		if err != nil {
			return err
		}
		if requeued && rounds < maxRequeueRounds {
			rounds++
			if maxSeq, err = c.db.lastSeq(ctx); err != nil {
				return fmt.Errorf("local store: %w", err)
			}
		}
	}
}

// answer applies the server's answers to a batch in one local transaction.
// The resolver is asked first, outside it. It reports whether the resolver
// queued anything, and fails when the resolver failed or a mutation got no
// answer it understands: those stay in the outbox for the next Sync.
func (c *Client) answer(ctx context.Context, batch []mutation, results []schema.PushResult, rep *SyncReport) (requeued bool, err error) {
	byID := make(map[string]*schema.PushResult, len(results))
	for i := range results {
		byID[results[i].MutationID] = &results[i]
	}
	resolutions := map[string]Resolution{}
	var answerErr error
	for i := range batch {
		m := &batch[i]
		res := byID[m.MutationID]
		if res == nil || res.Status != schema.PushConflict || res.Record == nil {
			continue
		}
		r, err := c.resolve(ctx, Conflict{MutationID: m.MutationID, Collection: m.Collection, ID: m.ID, Op: m.Op,
			Local: m.Data, Server: *res.Record, At: c.now()})
		if err != nil {
			answerErr = errors.Join(answerErr, fmt.Errorf("resolver on %s %s: %w", m.Collection, m.ID, err))
			continue
		}
		resolutions[m.MutationID] = r
	}
	now := c.db.stamp()
	var counts SyncReport
	unanswered := 0
	err = c.db.write(ctx, func(tx *wtx) error {
		counts, requeued, unanswered = SyncReport{}, false, 0
		for i := range batch {
			m := &batch[i]
			res := byID[m.MutationID]
			if res == nil {
				unanswered++
				continue
			}
			switch res.Status {
			case schema.PushApplied, schema.PushMerged:
				if err := stored(ctx, tx, m, res, &counts); err != nil {
					return err
				}
			case schema.PushConflict:
				r, ok := resolutions[m.MutationID]
				if !ok && res.Record != nil {
					continue // the resolver failed: ask again next time
				}
				again, err := conflicted(ctx, tx, now, m, res, r)
				if err != nil {
					return err
				}
				counts.Conflicts++
				if again {
					counts.Requeued++
					requeued = true
				}
			case schema.PushRejected:
				if err := dropMutation(ctx, tx, m); err != nil {
					return err
				}
				if err := keepRejection(ctx, tx, now, m, res.Error); err != nil {
					return err
				}
				counts.Rejected++
			default:
				unanswered++
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("local store: %w", err)
	}
	rep.Applied += counts.Applied
	rep.Merged += counts.Merged
	rep.Conflicts += counts.Conflicts
	rep.Requeued += counts.Requeued
	rep.Rejected += counts.Rejected
	if unanswered > 0 {
		// Left in the outbox, to be sent again by the next Sync.
		answerErr = errors.Join(answerErr, fmt.Errorf("push: %d mutations got no answer the client understands", unanswered))
	}
	return requeued, answerErr
}

// stored stores the version (and the merged record) a write produced.
func stored(ctx context.Context, tx *wtx, m *mutation, res *schema.PushResult, counts *SyncReport) error {
	merged := res.Status == schema.PushMerged && res.Record != nil
	rec := res.Record
	if !merged {
		rec = &schema.Envelope{Collection: m.Collection, ID: m.ID, Version: res.Version, Deleted: m.Op == schema.MutationDelete, Data: m.Data}
	}
	if res.Status == schema.PushMerged {
		counts.Merged++
	} else {
		counts.Applied++
	}
	if err := putRecord(ctx, tx, rec, merged); err != nil {
		return err
	}
	return landed(ctx, tx, m, rec, merged)
}

// conflicted stores the server's record of a conflict, keeps the conflict
// and queues what the resolver decided; it reports whether it queued.
func conflicted(ctx context.Context, tx *wtx, now string, m *mutation, res *schema.PushResult, r Resolution) (bool, error) {
	k := Conflict{MutationID: m.MutationID, Collection: m.Collection, ID: m.ID, Op: m.Op, Local: m.Data}
	if res.Record != nil {
		k.Server = *res.Record
		if err := putRecord(ctx, tx, res.Record, true); err != nil {
			return false, err
		}
	}
	if err := dropMutation(ctx, tx, m); err != nil {
		return false, err
	}
	base := k.Server.Version
	if k.Server.Deleted {
		base = 0
	}
	switch {
	case r.Data != nil:
		data, err := recordData(m.Collection, m.ID, r.Data)
		if err != nil {
			return false, err
		}
		if err := insertMutation(ctx, tx, now, m.Collection, m.ID, schema.MutationUpsert, base, data, ""); err != nil {
			return false, err
		}
		k.Requeued = true
	case r.Delete && !k.Server.Deleted:
		if err := insertMutation(ctx, tx, now, m.Collection, m.ID, schema.MutationDelete, base, nil, ""); err != nil {
			return false, err
		}
		k.Requeued = true
	}
	return k.Requeued, keepConflict(ctx, tx, now, &k)
}

// pull fetches pages of changes until the server has no more.
func (c *Client) pull(ctx context.Context, rep *SyncReport) error {
	for {
		cp, err := c.db.checkpoint(ctx)
		if err != nil {
			return fmt.Errorf("local store: %w", err)
		}
		var page schema.PullResponse
		if err := c.api.call(ctx, "pull", "/v1/sync/pull", schema.PullRequest{Checkpoint: cp, Limit: c.cfg.PullLimit}, &page, rep); err != nil {
			return err
		}
		err = c.db.write(ctx, func(tx *wtx) error {
			for _, env := range page.Changes {
				if err := putRecord(ctx, tx, env, true); err != nil {
					return err
				}
			}
			return setCheckpoint(ctx, tx, page.Checkpoint)
		})
		if err != nil {
			return fmt.Errorf("local store: %w", err)
		}
		rep.Pulled += len(page.Changes)
		if !page.HasMore || page.Checkpoint == cp {
			return nil
		}
	}
}
