/* sweepsort native runner: plays a host session with the Open Ephys Python Processor's threading.
 *
 * The plugin initialises Python on the GUI's message thread, which then keeps the GIL for good,
 * and calls process(), handle_ttl_event() and handle_spike() -- and, from whatever thread changed
 * the state, start/stop_acquisition() and start/stop_recording() -- WITHOUT taking the GIL.
 * CPython 3.10/3.11 keep the current thread state in one process-wide variable, so plain Python
 * runs there; anything that tries to take the GIL (PyGILState_Ensure, e.g. numba releasing an
 * array argument) waits forever, exactly as in the GUI. (Modelled on shared/tools/gilhost.)
 *
 * Here the main thread initialises Python (and so holds the GIL), imports
 * oe_plugin.host.native_driver and calls its setup(JOB) -- which reads the job, builds the source
 * and PyProcessor -- and from then on only sleeps and watches. A second thread, the "audio
 * thread", calls driver.step() until it returns a negative number; every module call the
 * driver makes is announced through _sweepsort_runner.mark(call, block, sample), which feeds the
 * watchdog. After the audio thread is done the main thread calls driver.finish(), which writes
 * the report.
 *
 * usage: runner JOB.json [--hang-timeout SECONDS] [--speed FACTOR]
 *        --speed: blocks paced at FACTOR x real time (0, the default: as fast as possible)
 * exit:  0 every call returned; 2 the job or the driver failed; 3 import failed;
 *        4 PyProcessor() raised; 10 a call hung (it waits for the GIL or a lock);
 *        11 an exception escaped process()/handle_ttl_event()/handle_spike() (the GUI stalls);
 *        12 start/stop_acquisition()/start/stop_recording() raised (the GUI shows a dialog).
 * The last line on stderr of a failed run reads
 *        sweepsort-runner: verdict=NAME exit=N call=CALL block=K sample=S
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if PY_VERSION_HEX >= 0x030C0000
#warning "the Python Processor's threading works only with CPython 3.10/3.11; 3.12+ crashes"
#endif

static char where[128] = "setup";
static volatile long block_index = -1;
static volatile long long sample_number = -1;
static volatile long progress = 0;
static volatile int finished = 0, verdict = 0;
static PyObject *driver_step = NULL;
static double speed = 0.0, hang_timeout_s = 10.0;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void report_verdict(const char *name, int code) {
    fprintf(stderr, "sweepsort-runner: verdict=%s exit=%d call=%s block=%ld sample=%lld\n",
            name, code, where, (long)block_index, (long long)sample_number);
    fflush(stderr);
}

/* _sweepsort_runner.mark(call, block_index, sample_number): called before every module call */
static PyObject *rt_mark(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    long blk;
    long long sn;
    if (!PyArg_ParseTuple(args, "slL", &name, &blk, &sn)) return NULL;
    snprintf(where, sizeof where, "%s", name);
    block_index = blk;
    sample_number = sn;
    __atomic_add_fetch(&progress, 1, __ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyMethodDef rt_methods[] = {
    {"mark", rt_mark, METH_VARARGS, "mark(call, block_index, sample_number): progress + name"},
    {NULL, NULL, 0, NULL}};
static struct PyModuleDef rt_module = {PyModuleDef_HEAD_INIT, "_sweepsort_runner",
                                       "hooks of sweepsort's native runner", -1, rt_methods,
                                       NULL, NULL, NULL, NULL};
static PyObject *rt_init(void) { return PyModule_Create(&rt_module); }

static int in_list(const char *name, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(name, *list)) return 1;
    return 0;
}

static void *audio_thread(void *unused) {
    (void)unused;
    static const char *const crash_calls[] = {"process", "handle_ttl_event", "handle_spike", NULL};
    static const char *const state_calls[] = {"start_acquisition", "stop_acquisition",
                                              "start_recording", "stop_recording", NULL};
    for (;;) {
        PyObject *r = PyObject_CallObject(driver_step, NULL);   /* no GIL taken, as the plugin */
        if (!r) {
            if (in_list(where, crash_calls)) {
                fprintf(stderr, "sweepsort-runner: an exception escaped %s() at block %ld "
                        "(sample %lld); the real host would stall here\n", where,
                        (long)block_index, (long long)sample_number);
                verdict = 11;
            } else if (in_list(where, state_calls)) {
                fprintf(stderr, "sweepsort-runner: %s() raised; the GUI would show an error "
                        "dialog and disable the module\n", where);
                verdict = 12;
            } else {
                fprintf(stderr, "sweepsort-runner: the driver failed in %s\n", where);
                verdict = 2;
            }
            PyErr_Print();
            break;
        }
        double dt = PyFloat_AsDouble(r);
        Py_DECREF(r);
        __atomic_add_fetch(&progress, 1, __ATOMIC_SEQ_CST);
        if (dt < 0) break;
        if (speed > 0 && dt > 0) usleep((useconds_t)(dt / speed * 1e6));
    }
    finished = 1;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s JOB.json [--hang-timeout SECONDS] [--speed FACTOR]\n", argv[0]);
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--hang-timeout")) hang_timeout_s = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--speed")) speed = atof(argv[i + 1]);
        else { fprintf(stderr, "sweepsort-runner: unknown option %s\n", argv[i]); return 2; }
    }

    PyImport_AppendInittab("_sweepsort_runner", rt_init);
    Py_Initialize();                                   /* this thread now holds the GIL */
    PyObject *driver = PyImport_ImportModule("oe_plugin.host.native_driver");
    if (!driver) {
        PyErr_Print();
        fprintf(stderr, "sweepsort-runner: cannot import oe_plugin.host.native_driver "
                        "(is PYTHONPATH set?)\n");
        report_verdict("job-error", 2);
        _exit(2);
    }
    PyObject *rc = PyObject_CallMethod(driver, "setup", "s", argv[1]);
    if (!rc) { PyErr_Print(); report_verdict("job-error", 2); _exit(2); }
    long code = PyLong_AsLong(rc);
    Py_DECREF(rc);
    if (code) {
        report_verdict(code == 3 ? "import-failed" : code == 4 ? "init-failed" : "job-error",
                       (int)code);
        _exit((int)code);
    }
    driver_step = PyObject_GetAttrString(driver, "step");
    if (!driver_step) { PyErr_Print(); report_verdict("job-error", 2); _exit(2); }

    pthread_t th;
    if (pthread_create(&th, NULL, audio_thread, NULL)) {
        fprintf(stderr, "sweepsort-runner: cannot start the audio thread\n");
        _exit(2);
    }
    long seen = -1;
    double since = now();
    while (!finished) {                                /* hold the GIL, never release it */
        usleep(2000);
        long p = __atomic_load_n(&progress, __ATOMIC_SEQ_CST);
        if (p != seen) { seen = p; since = now(); }
        else if (now() - since > hang_timeout_s) {
            fprintf(stderr, "sweepsort-runner: %s() did not return within %g s (block %ld, "
                    "sample %lld) -- it waits for the GIL or a lock, or loops; the real host "
                    "would stall here\n", where, hang_timeout_s, (long)block_index,
                    (long long)sample_number);
            report_verdict("hang", 10);
            _exit(10);
        }
    }
    pthread_join(th, NULL);
    if (verdict) {
        report_verdict(verdict == 11 ? "crash" : verdict == 12 ? "call-error" : "job-error",
                       verdict);
        _exit(verdict);
    }
    PyObject *fin = PyObject_CallMethod(driver, "finish", NULL);
    if (!fin) { PyErr_Print(); report_verdict("job-error", 2); _exit(2); }
    Py_DECREF(fin);
    fflush(stdout);
    fflush(stderr);
    _exit(0);                                          /* skip finalisation, like a GUI quit */
}
