// sweepstim TTL firmware, byte protocol v1 (see stimulus/ttl/serial.py and docs/stimulus.md).
//
// Receives one message per display refresh from `sweepstim run --ttl serial:PORT` and sets the
// output pins at the given microsecond offsets from the moment the message arrived.
//
//   host -> MCU  A5 'H'                                 -> "SWEEPSTIM-TTL 1\n"
//   host -> MCU  A5 'F' n {off_us:u16le word:u16le}*n chk  (chk = sum of bytes after A5, mod 256)
//   host -> MCU  A5 'Z' chk                             -> all lines low, answers 'z'
//   MCU -> host  'E' c   c = 'C' checksum, 'O' overrun, 'S' lost sync
//
// The sketch knows nothing of the sweep protocol: it plays the timed port words the host's
// encoder computed (oe_plugin/protocol/encoder.py). So TTL protocol version 2 (the session code
// sent as chunk refreshes between START refreshes, docs/ttl-protocol.md) needs no change here:
// those refreshes are ordinary 'F' messages.
//
// Bit l of a word is the Open Ephys TTL line l (0-based). Wire pin LINE_PIN[l] to the
// acquisition system's digital input l (e.g. the Open Ephys I/O board's BNC l+1), with a common
// ground. Edit LINE_PIN for your board; -1 = line not wired. Tested boards should be fast
// enough to write a pin within a few microseconds (Teensy, Arduino Due/Zero/Uno R4, RP2040).

#include <Arduino.h>

const int8_t LINE_PIN[16] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, -1, -1, -1, -1};
const uint8_t MAX_CHANGES = 64;

uint16_t offsets[MAX_CHANGES];
uint16_t words[MAX_CHANGES];
uint8_t n_changes = 0, next_change = 0;
uint32_t t_frame = 0;
uint16_t current = 0;

void write_word(uint16_t w) {
  uint16_t diff = w ^ current;
  for (uint8_t l = 0; l < 16; l++) {
    if ((diff >> l) & 1 && LINE_PIN[l] >= 0) digitalWrite(LINE_PIN[l], (w >> l) & 1);
  }
  current = w;
}

int read_byte() {  // blocking read with a 20 ms timeout
  uint32_t t0 = millis();
  while (!Serial.available()) {
    if (millis() - t0 > 20) return -1;
  }
  return Serial.read();
}

void flush_pending() {  // apply what is left of the previous refresh at once
  while (next_change < n_changes) write_word(words[next_change++]);
}

void setup() {
  for (uint8_t l = 0; l < 16; l++) {
    if (LINE_PIN[l] >= 0) { pinMode(LINE_PIN[l], OUTPUT); digitalWrite(LINE_PIN[l], LOW); }
  }
  Serial.begin(115200);
}

void loop() {
  // 1. due changes of the current refresh
  while (next_change < n_changes && (uint32_t)(micros() - t_frame) >= offsets[next_change]) {
    write_word(words[next_change++]);
  }
  // 2. a new message
  if (!Serial.available()) return;
  int b = Serial.read();
  if (b != 0xA5) { Serial.write('E'); Serial.write('S'); return; }
  uint32_t t_rx = micros();
  int kind = read_byte();
  if (kind == 'H') { Serial.print("SWEEPSTIM-TTL 1\n"); return; }
  if (kind == 'Z') {
    read_byte();
    n_changes = next_change = 0;
    write_word(0);
    Serial.write('z');
    return;
  }
  if (kind != 'F') { Serial.write('E'); Serial.write('S'); return; }
  int n = read_byte();
  if (n < 0 || n > MAX_CHANGES) { Serial.write('E'); Serial.write('C'); return; }
  uint8_t sum = 'F' + n;
  uint16_t off[MAX_CHANGES], w[MAX_CHANGES];
  for (int i = 0; i < n; i++) {
    int b0 = read_byte(), b1 = read_byte(), b2 = read_byte(), b3 = read_byte();
    if (b3 < 0) { Serial.write('E'); Serial.write('C'); return; }
    sum += b0 + b1 + b2 + b3;
    off[i] = b0 | (b1 << 8);
    w[i] = b2 | (b3 << 8);
  }
  int chk = read_byte();
  if (chk < 0 || (uint8_t)chk != sum) { Serial.write('E'); Serial.write('C'); return; }
  if (next_change < n_changes) { flush_pending(); Serial.write('E'); Serial.write('O'); }
  for (int i = 0; i < n; i++) { offsets[i] = off[i]; words[i] = w[i]; }
  n_changes = n;
  next_change = 0;
  t_frame = t_rx;
}
