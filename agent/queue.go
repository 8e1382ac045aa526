package agent

import (
	"sync"

	"github.com/sensor-agent/sensor-agent/agent/batch"
)

// queue is the bounded in-memory buffer between the batcher and the
// sender. When it is full the oldest batch is dropped and counted, so
// sampling never blocks on a slow or absent network. (A durable disk spool
// replaces it in a later step.)
type queue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	items    []batch.Batch
	bytes    int
	maxBytes int
	closed   bool
	// dropped counts batches and readings pushed out by the bound.
	droppedBatches  int
	droppedReadings int
	onDrop          func(batch.Batch)
}

func newQueue(maxBytes int, onDrop func(batch.Batch)) *queue {
	q := &queue{maxBytes: maxBytes, onDrop: onDrop}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push appends b, dropping the oldest batches while over the bound.
func (q *queue) push(b batch.Batch) {
	q.mu.Lock()
	q.items = append(q.items, b)
	q.bytes += len(b.Payload)
	var dropped []batch.Batch
	for q.bytes > q.maxBytes && len(q.items) > 1 {
		old := q.items[0]
		q.items = q.items[1:]
		q.bytes -= len(old.Payload)
		q.droppedBatches++
		q.droppedReadings += old.Count
		dropped = append(dropped, old)
	}
	q.cond.Signal()
	q.mu.Unlock()
	for _, d := range dropped {
		if q.onDrop != nil {
			q.onDrop(d)
		}
	}
}

// peek blocks until a batch is available or the queue is closed and empty.
// The batch stays queued until pop, so a batch being retried is not lost
// and is still subject to the bound.
func (q *queue) peek() (batch.Batch, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return batch.Batch{}, false
	}
	return q.items[0], true
}

// pop removes b if it is still at the head (it may have been dropped by
// the bound while it was being sent).
func (q *queue) pop(b batch.Batch) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) > 0 && q.items[0].FirstSeq == b.FirstSeq && q.items[0].Topic == b.Topic {
		q.bytes -= len(q.items[0].Payload)
		q.items = q.items[1:]
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// len returns the number of batches and readings waiting.
func (q *queue) len() (batches, readings int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, b := range q.items {
		readings += b.Count
	}
	return len(q.items), readings
}
