// A stand-in for actions/github-script: the step's script runs as it would
// there (an async function of require, github, context, core), but
// `github` is a fake pull request whose comments live in a JSON file
// ($FLEET_TEST_COMMENTS), so a test can read what was posted and see that a
// second run edits the comment instead of adding one.
const fs = require('fs');

const store = process.env.FLEET_TEST_COMMENTS;
if (!store) throw new Error('the test sets FLEET_TEST_COMMENTS');
// Matrix jobs run at once under act: one script at a time edits the store,
// as one find-or-create on GitHub would not race with another environment's.
const lock = `${store}.lock`;
const deadline = Date.now() + 30000;
for (;;) {
  try {
    fs.mkdirSync(lock);
    break;
  } catch (err) {
    if (err.code !== 'EEXIST' || Date.now() > deadline) throw err;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
}
process.on('exit', () => fs.rmSync(lock, { recursive: true, force: true }));
const load = () => (fs.existsSync(store) ? JSON.parse(fs.readFileSync(store, 'utf8')) : []);
const save = (comments) => fs.writeFileSync(store, JSON.stringify(comments, null, 2));

const event = JSON.parse(fs.readFileSync(process.env.GITHUB_EVENT_PATH, 'utf8'));
const [owner, repo] = (process.env.GITHUB_REPOSITORY || '/').split('/');
const context = {
  payload: event,
  eventName: process.env.GITHUB_EVENT_NAME,
  sha: process.env.GITHUB_SHA,
  runId: Number(process.env.GITHUB_RUN_ID || 0),
  serverUrl: process.env.GITHUB_SERVER_URL || 'https://github.com',
  repo: { owner, repo },
  issue: { owner, repo, number: (event.pull_request || event.issue || {}).number },
};

const checkIssue = (args) => {
  if (args.owner !== owner || args.repo !== repo) throw new Error(`wrong repository ${args.owner}/${args.repo}`);
};
const issues = {
  listComments: async (args) => {
    checkIssue(args);
    return { data: load().filter((c) => c.issue_number === args.issue_number) };
  },
  createComment: async (args) => {
    checkIssue(args);
    const comments = load();
    const comment = { id: comments.length + 1, issue_number: args.issue_number, body: args.body, updates: 0 };
    comments.push(comment);
    save(comments);
    return { data: comment };
  },
  updateComment: async (args) => {
    checkIssue(args);
    const comments = load();
    const comment = comments.find((c) => c.id === args.comment_id);
    if (!comment) throw new Error(`no comment ${args.comment_id}`);
    comment.body = args.body;
    comment.updates += 1;
    save(comments);
    return { data: comment };
  },
};
const github = {
  rest: { issues },
  paginate: async (method, args) => (await method(args)).data,
};
const core = {
  info: (m) => console.log(m),
  warning: (m) => console.log(`::warning::${m}`),
  setFailed: (m) => {
    console.log(`::error::${m}`);
    process.exitCode = 1;
  },
};

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
new AsyncFunction('require', 'github', 'context', 'core', process.env.SCRIPT)(require, github, context, core).catch(
  (err) => {
    console.log(`::error::${err.stack || err}`);
    process.exit(1);
  },
);
